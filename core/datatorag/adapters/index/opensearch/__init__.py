"""``SearchIndex`` on OpenSearch (Amazon OpenSearch Service 2.x and 3.x)."""

from datatorag.adapters.index.opensearch.index import OpenSearchIndex

__all__ = ["OpenSearchIndex"]
