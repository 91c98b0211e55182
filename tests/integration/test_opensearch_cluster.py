"""What only the OpenSearch index does, on a real cluster (``tests/fixtures/opensearch.py``:
``OPENSEARCH_URL``, or a container; skipped otherwise). Request shapes are checked without a
cluster in ``tests/unit/test_opensearch_requests.py``."""

from __future__ import annotations

from typing import Any

import pytest
from opensearchpy import OpenSearch

from datatorag.adapters.index.opensearch import OpenSearchIndex
from datatorag.adapters.index.opensearch.queries import keyword_query, vector_query
from tests.contracts.search_index import TENANT, index_doc, unit

pytestmark = pytest.mark.integration


def _chunk_generations(client: OpenSearch, index: str) -> set[str]:
    client.indices.refresh(index=index)
    response = client.search(index=index, body={"size": 1000, "_source": ["generation"]})
    return {hit["_source"]["generation"] for hit in response["hits"]["hits"]}


def test_retired_generations_are_deleted_after_the_grace(
    opensearch: OpenSearch, opensearch_url: str, opensearch_prefix: str
) -> None:
    index = OpenSearchIndex(
        OpenSearch(hosts=[opensearch_url]), prefix=opensearch_prefix, replicas=0, retire_grace_s=0.0
    )
    index_doc(index, "d1", ["First version."])
    index_doc(index, "d1", ["Second version."], version="v2")
    manifest = opensearch.get(index=f"{opensearch_prefix}manifests", id=TENANT)["_source"]
    assert _chunk_generations(opensearch, index.chunk_index(TENANT)) == {manifest["active"]["d1"]}
    assert manifest["retired"] == []
    index.delete_document(TENANT, "d1")
    index_doc(index, "d2", ["Another document."])  # its write purges what d1 retired
    assert _chunk_generations(opensearch, index.chunk_index(TENANT)) == set(
        opensearch.get(index=f"{opensearch_prefix}manifests", id=TENANT)["_source"][
            "active"
        ].values()
    )


def test_the_hybrid_pipeline_serves_a_hybrid_query(
    opensearch: OpenSearch, opensearch_url: str, opensearch_prefix: str
) -> None:
    """The server-side alternative to RRF runs with the adapter's own BM25 and knn clauses."""
    index = OpenSearchIndex(
        OpenSearch(hosts=[opensearch_url]), prefix=opensearch_prefix, replicas=0
    )
    vector = unit(3)
    index_doc(index, "d1", ["Parental leave lasts sixteen weeks."], [vector])
    index_doc(index, "d2", ["Expenses are reimbursed monthly."])
    pipeline = index.ensure_hybrid_pipeline(weights=(0.4, 0.6))
    manifest = opensearch.get(index=f"{opensearch_prefix}manifests", id=TENANT)["_source"]
    visible: list[Any] = [{"terms": {"generation": sorted(manifest["active"].values())}}]
    bm25 = keyword_query(["parental", "leave"], 5, visible)["query"]
    knn = vector_query(vector, 5, visible)["query"]
    try:
        response = opensearch.search(
            index=index.chunk_index(TENANT),
            body={"size": 5, "query": {"hybrid": {"queries": [bm25, knn]}}},
            search_pipeline=pipeline,
        )
    finally:
        opensearch.search_pipeline.delete(id=pipeline)
    assert response["hits"]["hits"][0]["_source"]["doc_id"] == "d1"
