"""``OpenSearchIndex`` against the ``SearchIndex`` behaviour suite, on a real OpenSearch cluster
(``tests/fixtures/opensearch.py``: ``OPENSEARCH_URL``, or a container; skipped otherwise)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opensearchpy import OpenSearch

from datatorag.adapters.index.opensearch import OpenSearchIndex
from datatorag.ports import SearchIndex
from tests.contracts.search_index import SearchIndexContract, VectorSpaceContract

pytestmark = pytest.mark.integration


class TestOpenSearchIndex(SearchIndexContract, VectorSpaceContract):
    @pytest.fixture
    def search_index(self, opensearch_url: str, opensearch_prefix: str) -> Iterator[SearchIndex]:
        index = OpenSearchIndex(
            OpenSearch(hosts=[opensearch_url], timeout=60), prefix=opensearch_prefix, replicas=0
        )
        yield index
        index.close()
