"""The pooled OpenSearch layout without a cluster: tenant scope and routing on every chunk
request, placement by threshold, and the move to a silo in its safe order.

The adapter talks through the real ``opensearchpy.OpenSearch`` client to ``FakeOpenSearch``
(``tests/fixtures/opensearch_fake.py``, a FAKE of the documented REST API that evaluates the
queries it is sent and honours routing). The same behaviour on a real cluster is in
``tests/contracts/test_opensearch_index.py`` (both layouts) and
``tests/integration/test_opensearch_cluster.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opensearchpy import OpenSearch

from datatorag.adapters.index.opensearch import OpenSearchIndex
from datatorag.adapters.index.opensearch.placement import Layout, Placement
from datatorag.adapters.index.opensearch.scope import ChunkRequests, UnscopedRequest
from datatorag.domain.models import DocumentStatus
from datatorag.settings import Settings
from tests.contracts.search_index import OTHER_TENANT, TENANT, doc_ids, index_doc, unit
from tests.fixtures.opensearch_fake import FakeOpenSearch, Request

pytestmark = pytest.mark.unit

PREFIX = "t-"
POOL = f"{PREFIX}pool-0"
SILO = f"{PREFIX}chunks-{TENANT}"
DOCUMENTS = f"{PREFIX}documents"
MANIFESTS = f"{PREFIX}manifests"
SHARED = {DOCUMENTS, MANIFESTS}


def adapter(fake: FakeOpenSearch, **options: Any) -> OpenSearchIndex:
    return OpenSearchIndex(OpenSearch(hosts=[fake.url]), prefix=PREFIX, replicas=0, **options)


@pytest.fixture
def pool(fake_opensearch: FakeOpenSearch) -> Iterator[OpenSearchIndex]:
    index = adapter(fake_opensearch, silo_min_documents=1000)
    yield index
    index.close()


def manifest(fake: FakeOpenSearch, tenant: str = TENANT) -> dict[str, Any]:
    source: dict[str, Any] = fake.source(MANIFESTS, tenant)
    return source


def tenant_term(query: Any) -> str | None:
    """The tenant a query is limited to: the ``term`` on ``tenant`` among a bool's ``filter``
    clauses, or inside a knn clause's filter (independent of the adapter's own check)."""
    if "knn" in query:
        [spec] = query["knn"].values()
        return tenant_term(spec["filter"])
    for clause in query.get("bool", {}).get("filter", []):
        if set(clause) == {"term"} and set(clause["term"]) == {"tenant"}:
            return str(clause["term"]["tenant"])
    return None


def check_scoped(request: Request) -> None:
    """What every request touching chunks must carry, by kind."""
    kind = request.path[-1]
    if kind == "_bulk":
        for action, source in zip(request.body[::2], request.body[1::2], strict=True):
            [(op, meta)] = action.items()
            if op == "update":  # a staged vector (re-embed): routed; the chunk's tenant is
                assert meta["routing"], action  # checked where the stored chunks are known
            else:
                assert op == "index" and meta["routing"] == source["tenant"], action
    elif kind == "_reindex":
        tenant = tenant_term(request.body["source"]["query"])
        assert tenant is not None and request.body["dest"]["routing"] == f"={tenant}"
    elif kind == "_refresh":  # makes writes visible: no query, no document
        assert request.method == "POST" and request.body is None
    elif kind == "_mapping":  # a re-embed adds its space's vector field, and nothing else
        assert request.method == "PUT"
        assert {f["type"] for f in request.body["properties"].values()} == {"knn_vector"}
    elif kind in ("_search", "_count", "_delete_by_query", "_update_by_query"):
        routing = request.params.get("routing")
        assert routing is not None, f"{kind} without routing"
        assert tenant_term(request.body["query"]) == routing, request.body
    elif request.method == "PUT" and len(request.path) == 1:  # index creation
        mappings = request.body["mappings"]
        assert mappings["_routing"] == {"required": True}
        assert mappings["properties"]["tenant"] == {"type": "keyword"}
    else:
        raise AssertionError(f"unexpected request to a chunk index: {request}")


def chunk_requests(fake: FakeOpenSearch) -> list[Request]:
    return [
        r
        for r in fake.requests
        if r.path and r.path[0] not in SHARED and r.path[0] != "_search" and r.method != "GET"
    ]


# -- every request is scoped ---------------------------------------------------------------------


@pytest.mark.parametrize("pooled", [True, False], ids=["pool", "silo"])
def test_every_chunk_request_carries_the_tenant_filter_and_routing(
    fake_opensearch: FakeOpenSearch, pooled: bool
) -> None:
    fake = fake_opensearch
    index = adapter(fake, pooled=pooled, silo_min_documents=2)
    for tenant in (TENANT, OTHER_TENANT):
        index_doc(index, "d1", ["Leave policy."], tenant=tenant)
        index_doc(index, "d1", ["Leave policy, revised."], version="v2", tenant=tenant)
        index_doc(index, "d2", ["Expenses policy."], tenant=tenant, metadata={"country": "US"})
        index.keyword_search(tenant, "policy", 5, {"metadata.country": "US"})
        index.vector_search(tenant, unit(1), 5, {"doc_id": ["d1", "d2"]})
        index.delete_document(tenant, "d2")
        index.purge(tenant)
    index_doc(index, "d3", ["Travel policy."])
    index.keyword_search(TENANT, "policy", 5)
    index.purge(TENANT)

    sent = chunk_requests(fake)
    kinds = {r.path[-1] for r in sent}
    assert {"_bulk", "_search", "_delete_by_query"} <= kinds
    assert ("_reindex" in kinds) == pooled
    for request in sent:
        check_scoped(request)


@pytest.mark.parametrize(
    "query",
    [
        {"match_all": {}},
        {"bool": {"filter": [{"term": {"tenant": OTHER_TENANT}}]}},
        {"bool": {"should": [{"term": {"tenant": TENANT}}]}},  # optional: not a limit
        {"bool": {"must_not": [{"term": {"tenant": TENANT}}]}},
        {"knn": {"embedding": {"vector": [1.0], "k": 5}}},  # a knn without a tenant filter
        {"terms": {"generation": ["g1"]}},
    ],
    ids=repr,
)
def test_a_query_not_limited_to_the_tenant_cannot_be_sent(
    fake_opensearch: FakeOpenSearch, query: dict[str, Any]
) -> None:
    requests = ChunkRequests(OpenSearch(hosts=[fake_opensearch.url]))
    with pytest.raises(UnscopedRequest, match=TENANT):
        requests.search(TENANT, POOL, {"query": query, "size": 5})
    with pytest.raises(UnscopedRequest):
        requests.delete(TENANT, POOL, query)
    assert fake_opensearch.requests == []


def test_a_scoped_query_is_sent_with_routing(fake_opensearch: FakeOpenSearch) -> None:
    requests = ChunkRequests(OpenSearch(hosts=[fake_opensearch.url]))
    scoped = {"bool": {"filter": [{"term": {"tenant": TENANT}}]}}
    assert requests.delete(TENANT, POOL, scoped) == 0  # no such index yet: nothing to delete
    [delete] = fake_opensearch.requests
    assert (delete.path, delete.params["routing"], delete.body) == (
        [POOL, "_delete_by_query"],
        TENANT,
        {"query": scoped},
    )


# -- isolation inside one pool -------------------------------------------------------------------


def test_tenants_sharing_a_pool_never_see_or_delete_each_other(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    fake = fake_opensearch
    vector = unit(7)
    index_doc(pool, "d1", ["Acme wellness stipend."], [vector])
    index_doc(pool, "d1", ["Globex wellness stipend."], [vector], tenant=OTHER_TENANT)
    assert set(fake.indices) >= {POOL} and SILO not in fake.indices  # one shared index
    assert fake.chunk_tenants(POOL) == {TENANT: {TENANT}, OTHER_TENANT: {OTHER_TENANT}}
    for tenant, word in ((TENANT, "Acme"), (OTHER_TENANT, "Globex")):
        hits = pool.keyword_search(tenant, "wellness stipend", 10)
        hits += pool.vector_search(tenant, vector, 10)
        assert [h.text.split()[0] for h in hits] == [word, word]

    # Orphans of Globex (chunks no manifest names, an hour old) sit beside Acme's in the pool:
    # Acme's purge sweeps its own only.
    for doc in fake.indices[POOL].docs.values():
        doc.source["indexed_at"] = "2000-01-01T00:00:00+00:00"
    pool.delete_document(TENANT, "d1")
    assert pool.purge(TENANT) >= 0
    assert pool.keyword_search(TENANT, "wellness", 10) == []
    assert len(pool.keyword_search(OTHER_TENANT, "wellness", 10)) == 1
    assert OTHER_TENANT in fake.chunk_tenants(POOL)
    other = pool.get_document(OTHER_TENANT, "d1")
    assert other is not None and other.status == DocumentStatus.INDEXED


# -- placement -----------------------------------------------------------------------------------


def test_a_new_tenant_starts_in_a_pool_or_its_own_index_by_the_layout() -> None:
    pooled = Layout(PREFIX, pooled=True, pool_indices=4)
    assert pooled.placement(TENANT, None).index.startswith(f"{PREFIX}pool-")
    spread = {pooled.pool(f"tenant-{i}") for i in range(200)}
    assert spread == {f"{PREFIX}pool-{n}" for n in range(4)}  # new tenants spread over pools
    assert Layout(PREFIX, pooled=False).placement(TENANT, None) == Placement(SILO)
    # A manifest written before placements existed: that tenant lives in its own index.
    assert pooled.placement(TENANT, {"active": {}}) == Placement(SILO)
    recorded = Placement(POOL, SILO, ())
    assert pooled.placement(TENANT, {"placement": recorded.body()}) == recorded


def test_a_pooled_tenant_moves_when_it_reaches_the_threshold() -> None:
    layout = Layout(PREFIX, silo_min_documents=100)
    assert not layout.wants_silo(Placement(POOL), 99)
    assert layout.wants_silo(Placement(POOL), 100)
    assert not layout.wants_silo(Placement(SILO), 10_000)  # already in its own index
    assert layout.wants_silo(Placement(POOL, SILO), 1)  # a move that stopped: finish it
    with pytest.raises(ValueError, match="at least 1"):
        Layout(PREFIX, pool_indices=0)


def test_settings_choose_the_layout_and_threshold(fake_opensearch: FakeOpenSearch) -> None:
    settings = Settings(
        opensearch_url=fake_opensearch.url,
        opensearch_layout="silo",
        opensearch_pool_indices=3,
        opensearch_silo_min_documents=42,
    )
    layout = OpenSearchIndex.from_settings(settings).layout
    assert (layout.pooled, layout.pool_indices, layout.silo_min_documents) == (False, 3, 42)
    assert Settings().opensearch_layout == "pooled"


# -- the move ------------------------------------------------------------------------------------


def searcher(
    index: OpenSearchIndex, fake: FakeOpenSearch, seen: list[str], problems: list[str]
) -> Callable[[Request], None]:
    """A hook that, before each request the move sends, checks a search shows every document
    the manifest names, once (never an empty or doubled answer); what it finds wrong goes to
    ``problems``."""
    checking = False

    def check(request: Request) -> None:
        nonlocal checking
        if checking or MANIFESTS not in fake.indices:
            return
        checking = True
        step = f"{request.method} {'/'.join(request.path)}"
        try:
            named = set(manifest(fake)["active"])
            keyword = index.keyword_search(TENANT, "policy", 50)
            semantic = index.vector_search(TENANT, unit(1), 50)
            for hits in (keyword, semantic):
                if len(hits) != len({h.chunk_id for h in hits}) or doc_ids(hits) != named:
                    problems.append(f"before {step}: {sorted(doc_ids(hits))} of {sorted(named)}")
            seen.append(step)
        finally:
            checking = False

    return check


def test_the_move_copies_then_switches_then_empties_the_pool_and_searches_answer_throughout(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    fake = fake_opensearch
    for n in range(3):
        index_doc(pool, f"d{n}", [f"Leave policy {n}.", f"Policy detail {n}."])
    index_doc(pool, "x", ["Globex policy."], tenant=OTHER_TENANT)
    seen: list[str] = []
    problems: list[str] = []
    fake.hook = searcher(pool, fake, seen, problems)
    fake.requests.clear()

    assert pool.move_to_silo(TENANT)
    assert problems == []

    writes = [r for r in fake.requests if r.method != "GET" and r.path[-1] != "_search"]
    steps = [(r.method, r.path[0], r.path[-1]) for r in writes]
    assert steps == [
        ("PUT", SILO, SILO),  # 1. the silo exists
        ("PUT", MANIFESTS, TENANT),  # 2. the move is announced: writers write both
        ("POST", "_reindex", "_reindex"),  # 3. the tenant's chunks are copied
        ("PUT", MANIFESTS, TENANT),  # 4. searches switch to the silo
    ]
    announce, switch = fake.calls("PUT", MANIFESTS, "_doc", TENANT)
    assert announce.body["placement"]["moving_to"] == SILO
    assert announce.body["placement"]["index"] == POOL
    assert switch.body["placement"]["index"] == SILO
    assert switch.body["placement"]["moving_to"] is None
    [vacated] = switch.body["placement"]["vacated"]
    assert vacated["index"] == POOL and vacated["at"] == pytest.approx(time.time(), abs=60)
    [copy] = fake.calls("POST", "_reindex")
    assert copy.body == {
        "source": {"index": POOL, "query": {"bool": {"filter": [{"term": {"tenant": TENANT}}]}}},
        "dest": {"index": SILO, "routing": f"={TENANT}"},
    }
    assert copy.params["refresh"] == "true" and copy.params["wait_for_completion"] == "true"
    assert len(seen) >= 4  # a search answered before every step
    # The pool keeps its copy through the grace (searches that read the old placement).
    assert set(fake.chunk_tenants(POOL)) == {TENANT, OTHER_TENANT}
    assert pool.chunk_index(TENANT) == SILO

    # 5. After the grace, the next write deletes the tenant's chunks from the pool by query.
    stale = manifest(fake)
    stale["placement"]["vacated"][0]["at"] = time.time() - 3600
    fake.put_source(MANIFESTS, TENANT, stale)
    index_doc(pool, "d9", ["Policy written after the move."])
    [drop] = [r for r in fake.calls("POST", POOL, "_delete_by_query")]
    assert drop.params["routing"] == TENANT
    assert drop.body["query"] == {"bool": {"filter": [{"term": {"tenant": TENANT}}]}}
    assert set(fake.chunk_tenants(POOL)) == {OTHER_TENANT}
    assert manifest(fake)["placement"]["vacated"] == []
    assert doc_ids(pool.keyword_search(TENANT, "policy", 50)) == {"d0", "d1", "d2", "d9"}
    assert doc_ids(pool.keyword_search(OTHER_TENANT, "policy", 50)) == {"x"}
    assert not pool.move_to_silo(TENANT)  # already in its own index: nothing to do


def test_the_write_that_reaches_the_threshold_moves_the_tenant(
    fake_opensearch: FakeOpenSearch,
) -> None:
    fake = fake_opensearch
    index = adapter(fake, silo_min_documents=3)
    index_doc(index, "d0", ["Policy zero."])
    index_doc(index, "d1", ["Policy one."])
    assert index.chunk_index(TENANT) == POOL and SILO not in fake.indices
    index_doc(index, "d2", ["Policy two."])
    assert index.chunk_index(TENANT) == SILO
    assert fake.calls("POST", "_reindex")
    assert doc_ids(index.keyword_search(TENANT, "policy", 10)) == {"d0", "d1", "d2"}


def test_a_write_during_the_move_reaches_both_indices(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    """A writer that reads the announced move indexes its generation into the pool and the
    silo, so the switch cannot lose it whatever the copy saw."""
    fake = fake_opensearch
    index_doc(pool, "d0", ["Policy zero."])

    def write_before_the_copy(request: Request) -> None:
        if request.path == ["_reindex"]:
            fake.hook = None
            index_doc(pool, "d1", ["Policy written during the move."])

    fake.hook = write_before_the_copy
    assert pool.move_to_silo(TENANT)
    bulks = fake.calls("POST", "_bulk")[-2:]
    assert {b.body[0]["index"]["_index"] for b in bulks} == {POOL, SILO}
    assert doc_ids(pool.keyword_search(TENANT, "policy", 10)) == {"d0", "d1"}


def test_a_writer_the_move_overtook_indexes_into_the_silo_before_its_commit(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    """The writer bulk-indexed into the pool; a whole move ran before its manifest commit: the
    commit finds its generation missing from the silo and indexes it there first."""
    fake = fake_opensearch
    index_doc(pool, "d0", ["Policy zero."])
    record_writes = 0

    def move_before_the_commit(request: Request) -> None:
        nonlocal record_writes
        if request.method == "PUT" and request.path == [DOCUMENTS, "_doc", f"{TENANT}:d1"]:
            record_writes += 1
            if record_writes == 2:  # the swap's commit of the record (the first announced it)
                fake.hook = None
                assert pool.move_to_silo(TENANT)

    fake.hook = move_before_the_commit
    index_doc(pool, "d1", ["Policy written across the move."])
    generation = manifest(fake)["active"]["d1"]
    in_silo = {d.source["generation"] for d in fake.indices[SILO].docs.values()}
    assert generation in in_silo
    assert manifest(fake)["placement"]["index"] == SILO
    assert doc_ids(pool.keyword_search(TENANT, "policy", 10)) == {"d0", "d1"}


def test_a_move_that_stopped_is_finished_by_the_next_write(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    fake = fake_opensearch
    index_doc(pool, "d0", ["Policy zero."])
    stopped = manifest(fake)
    stopped["placement"]["moving_to"] = SILO  # announced, then the mover died
    fake.put_source(MANIFESTS, TENANT, stopped)
    index_doc(pool, "d1", ["Policy one."])
    assert manifest(fake)["placement"]["index"] == SILO
    assert doc_ids(pool.keyword_search(TENANT, "policy", 10)) == {"d0", "d1"}


def test_a_failed_copy_leaves_the_tenant_where_it_was(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    fake = fake_opensearch
    index_doc(pool, "d0", ["Policy zero."])

    def drop_routing(request: Request) -> None:
        if request.path == ["_reindex"]:
            request.body["dest"]["routing"] = "discard"  # the silo then refuses every chunk

    fake.hook = drop_routing
    with pytest.raises(Exception, match="copying tenant"):
        pool.move_to_silo(TENANT)
    assert manifest(fake)["placement"]["index"] == POOL  # searches still read the pool
    assert doc_ids(pool.keyword_search(TENANT, "policy", 10)) == {"d0"}
