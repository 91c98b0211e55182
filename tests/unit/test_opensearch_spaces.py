"""Re-embedding a tenant on OpenSearch (``adapters/index/opensearch/spaces.py``) without a
cluster: the ``SpaceMigration`` and ``VectorSpace`` behaviour suites in a pool, in a silo, and for
a tenant stuck half way through a move to its silo; then what only OpenSearch does: other tenants
of the pool untouched, searches in the old space until the one manifest write and in the new one
after, a new dimension in a live index, the old vectors removed after the grace.

The adapter talks through the real ``opensearchpy.OpenSearch`` client to ``FakeOpenSearch``
(``tests/fixtures/opensearch_fake.py``, a FAKE of the documented REST API that evaluates the
queries, mappings and routing it is sent). The same suites run on a real cluster in
``tests/contracts/test_opensearch_index.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opensearchpy import OpenSearch

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.index.opensearch import OpenSearchIndex
from datatorag.adapters.index.opensearch.mappings import VECTOR_FIELD, space_field
from datatorag.domain.errors import VectorSpaceMismatch
from datatorag.domain.models import IndexedChunk
from datatorag.ports import SearchIndex
from datatorag.usecases.reembed import Reembedder
from tests.contracts.search_index import (
    OTHER_SPACE,
    OTHER_TENANT,
    SPACE,
    TENANT,
    SpaceMigrationContract,
    VectorSpaceContract,
    ids,
    make_chunks,
    record,
)
from tests.fixtures.opensearch_fake import FakeOpenSearch, Request
from tests.unit.test_opensearch_pool import (
    MANIFESTS,
    POOL,
    PREFIX,
    SILO,
    adapter,
    check_scoped,
    chunk_requests,
    manifest,
)
from tests.unit.test_reembed import StandInEmbeddings, Tenant

pytestmark = pytest.mark.unit

SMALL = "small-model/fp32/8"  # another model, another dimension
NEW_FIELD = space_field(SMALL)


def small(seed: int) -> list[float]:
    vector = np.random.default_rng(seed).normal(size=8)
    return [float(x) for x in vector / np.linalg.norm(vector)]


def stop_every_copy(fake: FakeOpenSearch) -> None:
    """Every ``_reindex`` fails (the silo refuses chunks without routing): a pooled tenant that
    reaches the threshold stays announced as moving, written to both indices, read from the
    pool."""

    def drop_routing(request: Request) -> None:
        if request.path == ["_reindex"]:
            request.body["dest"]["routing"] = "discard"

    fake.hook = drop_routing


LAYOUTS: dict[str, dict[str, Any]] = {
    "pool": {"pooled": True, "silo_min_documents": 1000},
    "silo": {"pooled": False},
    "mid-move": {"pooled": True, "silo_min_documents": 1},
}


class TestOpenSearchReembedOnTheFake(VectorSpaceContract, SpaceMigrationContract):
    @pytest.fixture(params=list(LAYOUTS))
    def search_index(
        self, request: pytest.FixtureRequest, fake_opensearch: FakeOpenSearch
    ) -> Iterator[SearchIndex]:
        index = adapter(fake_opensearch, **LAYOUTS[request.param])
        if request.param == "mid-move":
            stop_every_copy(fake_opensearch)
        yield index
        if request.param == "mid-move":  # the tenant really was half way
            assert manifest(fake_opensearch)["placement"] == {
                "index": POOL,
                "moving_to": SILO,
                "vacated": [],
            }
        index.close()


@pytest.fixture
def pool(fake_opensearch: FakeOpenSearch) -> Iterator[OpenSearchIndex]:
    index = adapter(fake_opensearch, silo_min_documents=1000)
    yield index
    index.close()


def write(
    index: OpenSearchIndex, doc_id: str, texts: list[str], *, tenant: str = TENANT
) -> list[IndexedChunk]:
    index.upsert_document(record(doc_id, tenant=tenant))
    chunks = make_chunks(doc_id, "v1", texts)
    assert index.replace_chunks(tenant, doc_id, "v1", chunks, space=SPACE)
    return chunks


def expire_retired_fields(fake: FakeOpenSearch, tenant: str = TENANT) -> None:
    """Let the retirement grace pass for the fields the tenant left."""
    source = manifest(fake, tenant)
    for entry in source["retired_fields"]:
        entry["at"] = time.time() - 3600
    fake.put_source(MANIFESTS, tenant, source)


def test_a_reembed_in_a_pool_leaves_the_other_tenants_alone(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    fake = fake_opensearch
    ours = write(pool, "d0", ["Parental leave.", "Sick leave."]) + write(pool, "d1", ["Wombats."])
    theirs = write(pool, "d0", ["Globex leave.", "Globex travel."], tenant=OTHER_TENANT)
    stored = fake.indices[POOL].docs
    before = {i: (d.source, d.seq_no) for i, d in stored.items() if d.routing == OTHER_TENANT}
    found = [ids(pool.vector_search(OTHER_TENANT, c.vector, 2, space=SPACE)) for c in theirs]
    fake.requests.clear()

    pool.stage_vectors(TENANT, SMALL, {c.chunk_id: small(i) for i, c in enumerate(ours)})
    assert pool.swap_space(TENANT, SMALL) == []
    expire_retired_fields(fake)
    pool.purge(TENANT)

    after = {i: (d.source, d.seq_no) for i, d in stored.items() if d.routing == OTHER_TENANT}
    assert after == before  # not one of their chunks was written
    assert [ids(pool.vector_search(OTHER_TENANT, c.vector, 2, space=SPACE)) for c in theirs] == (
        found
    )
    assert pool.vector_space(OTHER_TENANT) == SPACE and pool.vector_space(TENANT) == SMALL
    # Ours: only the new field is left, and it answers.
    for doc in (d for d in stored.values() if d.routing == TENANT):
        assert VECTOR_FIELD not in doc.source and len(doc.source[NEW_FIELD]) == 8
    assert ids(pool.vector_search(TENANT, small(2), 1, space=SMALL)) == [ours[2].chunk_id]
    # Every request that touched a chunk was the tenant's, routed and filtered.
    sent = chunk_requests(fake)
    assert {r.path[-1] for r in sent} >= {"_bulk", "_search", "_mapping", "_update_by_query"}
    for request in sent:
        check_scoped(request)
        if request.path[-1] == "_bulk":
            for action in request.body[::2]:
                [(op, meta)] = action.items()
                assert op == "update" and meta["routing"] == TENANT
                assert stored[meta["_id"]].source["tenant"] == TENANT


def test_searches_read_the_old_space_until_the_swap_and_the_new_one_after(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    fake = fake_opensearch
    old = write(pool, "d0", ["Parental leave.", "Sick leave.", "Wombat care."])
    new = {c.chunk_id: small(i) for i, c in enumerate(old)}

    def in_old_space() -> None:
        for chunk in old:
            best = pool.vector_search(TENANT, chunk.vector, 1, space=SPACE)
            assert ids(best) == [chunk.chunk_id] and best[0].score == pytest.approx(1.0, abs=1e-5)
        with pytest.raises(VectorSpaceMismatch):
            pool.vector_search(TENANT, small(0), 1, space=SMALL)

    def in_new_space() -> None:
        for chunk_id, vector in new.items():
            assert ids(pool.vector_search(TENANT, vector, 1, space=SMALL)) == [chunk_id]
        with pytest.raises(VectorSpaceMismatch):
            pool.vector_search(TENANT, old[0].vector, 1, space=SPACE)

    pool.stage_vectors(TENANT, SMALL, dict(list(new.items())[:2]))
    in_old_space()
    assert pool.swap_space(TENANT, SMALL) == [old[2].chunk_id]  # partly staged: no swap
    in_old_space()
    pool.stage_vectors(TENANT, SMALL, dict(list(new.items())[2:]))
    in_old_space()
    swaps: list[Request] = []

    def around_the_swap(request: Request) -> None:
        if request.method == "PUT" and request.path == [MANIFESTS, "_doc", TENANT]:
            fake.hook = None
            in_old_space()  # the one write that swaps has not landed yet
            swaps.append(request)
            fake.hook = around_the_swap

    fake.hook = around_the_swap
    assert pool.swap_space(TENANT, SMALL) == []
    fake.hook = None
    [swap] = swaps
    assert (swap.body["space"], swap.body["vector_field"]) == (SMALL, NEW_FIELD)
    in_new_space()
    # The old vectors stay through the grace (a search that read the old manifest), then go.
    pool.purge(TENANT)
    assert all(VECTOR_FIELD in d.source for d in fake.indices[POOL].docs.values())
    expire_retired_fields(fake)
    pool.purge(TENANT)
    assert not any(VECTOR_FIELD in d.source for d in fake.indices[POOL].docs.values())
    assert manifest(fake)["retired_fields"] == []
    in_new_space()
    assert ids(pool.keyword_search(TENANT, "wombat", 5)) == [old[2].chunk_id]


def test_a_write_that_read_the_old_space_before_the_swap_is_told_to_embed_again(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    """Its chunks went to the old field; the swap landed before its commit: searches would not
    see its vectors, so the writer raises (retryable) and its retry embeds in the new space."""
    fake = fake_opensearch
    old = write(pool, "d0", ["Parental leave."])
    pool.stage_vectors(TENANT, SMALL, {old[0].chunk_id: small(0)})
    record_writes = 0

    def swap_before_the_commit(request: Request) -> None:
        nonlocal record_writes
        if request.method == "PUT" and request.path == [f"{PREFIX}documents", "_doc", "acme:d1"]:
            record_writes += 1
            if record_writes == 2:  # the commit of the record (the first announced it)
                fake.hook = None
                assert pool.swap_space(TENANT, SMALL) == []

    fake.hook = swap_before_the_commit
    with pytest.raises(VectorSpaceMismatch):
        write(pool, "d1", ["Wombat allowance."])
    assert ids(pool.keyword_search(TENANT, "wombat", 5)) == ["d1:v1:0"]
    assert ids(pool.vector_search(TENANT, small(0), 5, space=SMALL)) == [old[0].chunk_id]
    # The retry, embedded by the new model, lands in the searched field.
    retry = make_chunks("d1", "v1", ["Wombat allowance."], [small(9)])
    assert pool.replace_chunks(TENANT, "d1", "v1", retry, space=SMALL)
    assert ids(pool.vector_search(TENANT, small(9), 1, space=SMALL)) == ["d1:v1:0"]


def test_a_tenant_moved_to_its_silo_after_a_reembed_keeps_its_new_vectors(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    old = write(pool, "d0", ["Parental leave.", "Sick leave."])
    pool.stage_vectors(TENANT, SMALL, {c.chunk_id: small(i) for i, c in enumerate(old)})
    assert pool.swap_space(TENANT, SMALL) == []
    assert pool.move_to_silo(TENANT)
    mapping = fake_opensearch.indices[SILO].body["mappings"]["properties"]
    assert mapping[NEW_FIELD]["dimension"] == 8
    assert ids(pool.vector_search(TENANT, small(1), 1, space=SMALL)) == [old[1].chunk_id]


def test_a_copy_that_raced_the_mapping_counts_as_missing_until_staged_again(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    """A move's copy wrote a staged chunk into the silo before the silo mapped the new field:
    the vector is in its _source, not indexed. The swap finds it missing there rather than
    swapping to vectors no search of the silo would find."""
    fake = fake_opensearch
    old = write(pool, "d0", ["Parental leave."])
    stop_every_copy(fake)
    with pytest.raises(Exception, match="copying tenant"):
        pool.move_to_silo(TENANT)  # announced: staging now goes to both indices
    fake.hook = None
    staged = {old[0].chunk_id: small(0)}
    pool.stage_vectors(TENANT, SMALL, staged)
    [(chunk_id, copied)] = fake.indices[POOL].docs.items()
    fake.indices[SILO].docs[chunk_id] = replace(
        copied, indexed=frozenset(fake.indices[SILO].mapped() or ()) - {NEW_FIELD}
    )
    assert pool.swap_space(TENANT, SMALL) == [old[0].chunk_id]
    pool.stage_vectors(TENANT, SMALL, staged)  # written again, under the mapping: indexed
    assert pool.swap_space(TENANT, SMALL) == []


def test_each_reembedded_document_costs_two_requests(
    fake_opensearch: FakeOpenSearch, tmp_path: Path
) -> None:
    """A manifest get and one ``_bulk`` of partial updates per document (docs/embedding-spaces.md);
    the rest is per tenant."""
    fake = fake_opensearch
    spent: dict[int, int] = {}
    for documents in (3, 12):
        index = OpenSearchIndex(OpenSearch(hosts=[fake.url]), prefix=f"n{documents}-", replicas=0)
        blobs = LocalBlobStore(tmp_path / str(documents))
        writer = Tenant(index, blobs, StandInEmbeddings(SPACE))
        for i in range(documents):
            writer.write(f"d{i}", "v1", [f"Rule {i}a.", f"Rule {i}b."])
        fake.requests.clear()
        writer.model.space = OTHER_SPACE
        done = Reembedder(index, blobs, writer.model).reembed(TENANT)
        spent[documents] = len(fake.requests)
        assert (done.documents, index.vector_space(TENANT)) == (documents, OTHER_SPACE)
    assert spent[12] - spent[3] == 2 * (12 - 3)
    assert spent[3] - 2 * 3 <= 12  # per tenant: swaps, a refresh, a mapping, the staging write


def test_staging_for_another_space_empties_the_earlier_staging(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    """An abandoned re-embed's vectors are never searched: the next purge removes them."""
    fake = fake_opensearch
    old = write(pool, "d0", ["Parental leave."])
    pool.stage_vectors(TENANT, SMALL, {old[0].chunk_id: small(0)})
    pool.stage_vectors(TENANT, OTHER_SPACE, {old[0].chunk_id: old[0].vector})
    pool.purge(TENANT)
    [chunk] = fake.indices[POOL].docs.values()
    assert NEW_FIELD not in chunk.source and space_field(OTHER_SPACE) in chunk.source
    assert VECTOR_FIELD in chunk.source  # still the searched one
    assert ids(pool.vector_search(TENANT, old[0].vector, 1, space=SPACE)) == [old[0].chunk_id]


def test_staging_after_another_run_swapped_stages_nothing(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    old = write(pool, "d0", ["Parental leave."])
    pool.stage_vectors(TENANT, SMALL, {old[0].chunk_id: small(0)})
    assert pool.swap_space(TENANT, SMALL) == []
    fake_opensearch.requests.clear()
    pool.stage_vectors(TENANT, SMALL, {old[0].chunk_id: small(1)})  # a slower run's late batch
    assert not fake_opensearch.calls("POST", "_bulk")
    assert ids(pool.vector_search(TENANT, small(0), 1, space=SMALL)) == [old[0].chunk_id]


def test_a_document_committed_between_the_check_and_the_swap_holds_it_back(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    """The swap's manifest write is conditional on the generations it checked: a document
    committed after the check (in the old space) makes it check again, and report it."""
    fake = fake_opensearch
    old = write(pool, "d0", ["Parental leave."])
    pool.stage_vectors(TENANT, SMALL, {old[0].chunk_id: small(0)})
    late: list[IndexedChunk] = []

    def write_after_the_check(request: Request) -> None:
        if request.path[-1] == "_search" and "must_not" in request.body["query"]["bool"]:
            fake.hook = None
            late.extend(write(pool, "d1", ["Wombat allowance."]))

    fake.hook = write_after_the_check
    assert pool.swap_space(TENANT, SMALL) == [late[0].chunk_id]
    assert pool.vector_space(TENANT) == SPACE
    assert ids(pool.vector_search(TENANT, late[0].vector, 1, space=SPACE)) == [late[0].chunk_id]


def test_a_move_to_the_silo_between_staging_and_swap_carries_the_staged_vectors(
    pool: OpenSearchIndex, fake_opensearch: FakeOpenSearch
) -> None:
    old = write(pool, "d0", ["Parental leave.", "Sick leave."])
    pool.stage_vectors(TENANT, SMALL, {c.chunk_id: small(i) for i, c in enumerate(old)})
    assert pool.move_to_silo(TENANT)  # the copy takes the staged field along
    assert fake_opensearch.indices[SILO].body["mappings"]["properties"][NEW_FIELD]["dimension"] == 8
    assert pool.swap_space(TENANT, SMALL) == []
    assert ids(pool.vector_search(TENANT, small(1), 1, space=SMALL)) == [old[1].chunk_id]
    assert pool.chunk_index(TENANT) == SILO
