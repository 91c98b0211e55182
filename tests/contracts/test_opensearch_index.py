"""``OpenSearchIndex`` against the ``SearchIndex`` behaviour suite, on a real OpenSearch cluster
(``tests/fixtures/opensearch.py``: ``OPENSEARCH_URL``, or a container; skipped otherwise), in
each layout: tenants in a shared pool index, each in its own index (silo), and pooled tenants
that move to their own index at their third document, while the suite runs. The same
re-embedding suites run on ``FakeOpenSearch`` in ``tests/unit/test_opensearch_spaces.py``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opensearchpy import OpenSearch

from datatorag.adapters.index.opensearch import OpenSearchIndex
from datatorag.ports import SearchIndex
from tests.contracts.search_index import (
    SearchIndexContract,
    SpaceMigrationContract,
    VectorSpaceContract,
)

pytestmark = pytest.mark.integration

LAYOUTS: dict[str, dict[str, Any]] = {
    "pool": {"pooled": True},
    "silo": {"pooled": False},
    "pool-then-silo": {"pooled": True, "silo_min_documents": 3},
}


class TestOpenSearchIndex(SearchIndexContract, VectorSpaceContract, SpaceMigrationContract):
    @pytest.fixture(params=list(LAYOUTS))
    def search_index(
        self, request: pytest.FixtureRequest, opensearch_url: str, opensearch_prefix: str
    ) -> Iterator[SearchIndex]:
        index = OpenSearchIndex(
            OpenSearch(hosts=[opensearch_url], timeout=60),
            prefix=opensearch_prefix,
            replicas=0,
            **LAYOUTS[request.param],
        )
        yield index
        index.close()
