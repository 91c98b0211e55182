"""What only the OpenSearch index does, on a real cluster (``tests/fixtures/opensearch.py``:
``OPENSEARCH_URL``, or a container; skipped otherwise). Request shapes are checked without a
cluster in ``tests/unit/test_opensearch_requests.py``."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from opensearchpy import OpenSearch

from datatorag.adapters.index.opensearch import OpenSearchIndex
from datatorag.adapters.index.opensearch.queries import keyword_query, vector_query
from tests.contracts.search_index import TENANT, index_doc, make_chunks, record, unit

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


# -- the pooled layout ---------------------------------------------------------------------------


def test_tenants_sharing_a_pool_stay_apart(
    opensearch: OpenSearch, opensearch_url: str, opensearch_prefix: str
) -> None:
    """Isolation inside one pool index: searches, deletes and purges of one tenant touch only
    its own chunks, though the pool's BM25 statistics are shared."""
    index = OpenSearchIndex(
        OpenSearch(hosts=[opensearch_url]), prefix=opensearch_prefix, replicas=0, pool_indices=1
    )
    tenants = [f"tenant-{n}" for n in range(6)]
    vector = unit(5)
    for tenant in tenants:
        index_doc(index, "d1", [f"{tenant} wellness stipend policy."], [vector], tenant=tenant)
    pool = index.chunk_index(tenants[0])
    assert {index.chunk_index(t) for t in tenants} == {pool}
    for tenant in tenants:
        hits = index.keyword_search(tenant, "wellness stipend", 10)
        hits += index.vector_search(tenant, vector, 10)
        assert [h.text.split()[0] for h in hits] == [tenant, tenant]
    index.delete_document(tenants[0], "d1")
    index.purge(tenants[0])
    assert index.keyword_search(tenants[0], "wellness", 10) == []
    for tenant in tenants[1:]:
        assert len(index.keyword_search(tenant, "wellness", 10)) == 1


def test_the_pool_refuses_a_chunk_without_routing(
    opensearch: OpenSearch, opensearch_url: str, opensearch_prefix: str
) -> None:
    index = OpenSearchIndex(
        OpenSearch(hosts=[opensearch_url]), prefix=opensearch_prefix, replicas=0
    )
    index_doc(index, "d1", ["Text."])
    with pytest.raises(Exception, match="routing"):
        opensearch.index(index=index.chunk_index(TENANT), id="x", body={"tenant": TENANT})


def test_searches_answer_while_a_tenant_moves_to_its_own_index(
    opensearch: OpenSearch, opensearch_url: str, opensearch_prefix: str
) -> None:
    index = OpenSearchIndex(
        OpenSearch(hosts=[opensearch_url]),
        prefix=opensearch_prefix,
        replicas=0,
        retire_grace_s=2.0,
    )
    for n in range(20):
        index_doc(index, f"d{n}", [f"Leave policy part {n}.", f"More policy {n}."])
    index_doc(index, "x", ["Another tenant's policy."], tenant="other")
    expected = {f"d{n}" for n in range(20)}
    answers: list[set[str]] = []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            answers.append({h.doc_id for h in index.keyword_search(TENANT, "policy", 100)})

    thread = threading.Thread(target=search)
    thread.start()
    try:
        pool = index.chunk_index(TENANT)
        assert index.move_to_silo(TENANT)
        time.sleep(2.5)  # past the grace: the next write empties the pool of this tenant
        index_doc(index, "d0", ["Leave policy part 0, revised."], version="v2")
    finally:
        stop.set()
        thread.join()
    assert answers and all(answer == expected for answer in answers)
    assert index.chunk_index(TENANT) == f"{opensearch_prefix}chunks-{TENANT}"
    opensearch.indices.refresh(index=pool)
    left = opensearch.count(index=pool, body={"query": {"term": {"tenant": TENANT}}})
    assert left["count"] == 0
    assert [h.doc_id for h in index.keyword_search("other", "policy", 10)] == ["x"]


def test_a_reembed_into_another_dimension_in_a_live_pool(
    opensearch: OpenSearch, opensearch_url: str, opensearch_prefix: str
) -> None:
    """The new space's field is added to the live pool index (``put_mapping``), the swap makes
    it the searched one, and after the grace the old vectors are removed from this tenant's
    chunks only (``_update_by_query``)."""
    index = OpenSearchIndex(
        OpenSearch(hosts=[opensearch_url]), prefix=opensearch_prefix, replicas=0
    )
    space, small_space = "all-MiniLM-L6-v2/fp32/384", "small-model/fp32/8"
    written = {}
    for tenant in (TENANT, "globex"):
        index.upsert_document(record("d1", tenant=tenant))
        written[tenant] = make_chunks("d1", "v1", ["Parental leave.", "Sick leave."])
        assert index.replace_chunks(tenant, "d1", "v1", written[tenant], space=space)
    smalls = [[1.0] + [0.0] * 7, [0.0, 1.0] + [0.0] * 6]
    index.stage_vectors(
        TENANT, small_space, {c.chunk_id: v for c, v in zip(written[TENANT], smalls, strict=True)}
    )
    hits = index.vector_search(TENANT, written[TENANT][0].vector, 1, space=space)
    assert [h.chunk_id for h in hits] == [written[TENANT][0].chunk_id]  # still the old space
    assert index.swap_space(TENANT, small_space) == []
    hits = index.vector_search(TENANT, smalls[1], 1, space=small_space)
    assert [h.chunk_id for h in hits] == [written[TENANT][1].chunk_id]
    manifests = f"{opensearch_prefix}manifests"
    manifest = opensearch.get(index=manifests, id=TENANT)["_source"]
    assert [f["field"] for f in manifest["retired_fields"]] == ["embedding"]
    manifest["retired_fields"][0]["at"] = 0  # the grace has passed
    opensearch.index(index=manifests, id=TENANT, body=manifest, refresh=True)
    index.purge(TENANT)
    pool = index.chunk_index(TENANT)
    opensearch.indices.refresh(index=pool)

    def with_old_vectors(tenant: str) -> int:
        query = {
            "bool": {"filter": [{"term": {"tenant": tenant}}, {"exists": {"field": "embedding"}}]}
        }
        return int(opensearch.count(index=pool, body={"query": query}, routing=tenant)["count"])

    assert (with_old_vectors(TENANT), with_old_vectors("globex")) == (0, 2)
    hits = index.vector_search("globex", written["globex"][0].vector, 1, space=space)
    assert [h.chunk_id for h in hits] == [written["globex"][0].chunk_id]
