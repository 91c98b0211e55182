"""``Reembedder``: a tenant moved into the endpoint's space, round by round, on the real embedded
index and blob store, and on ``OpenSearchIndex`` talking to ``FakeOpenSearch`` (a FAKE of the
documented REST API, ``tests/fixtures/opensearch_fake.py``). The end-to-end run with the real
model is ``tests/integration/test_reembed.py``; here the embeddings are a stand-in, so each case
can be set up exactly."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from opensearchpy import OpenSearch

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.index.opensearch import OpenSearchIndex
from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.domain.blob_keys import chunks_key
from datatorag.domain.errors import PermanentError, RetryableError
from datatorag.domain.models import Chunk, ChunkSet, IndexedChunk
from datatorag.ports import Embedded, SearchIndex
from datatorag.usecases.reembed import Progress, Reembedder, embedding_texts
from tests.contracts.search_index import OTHER_SPACE, SPACE, TENANT, record

pytestmark = pytest.mark.unit


class StandInEmbeddings:
    """Stands in for the embedding endpoint: a fixed unit vector per (space, text), so the test
    can tell which space embedded which chunk; ``space`` is the model the endpoint runs now."""

    dimension = 384

    def __init__(self, space: str) -> None:
        self.space = space
        self.texts = 0

    def vector(self, text: str, space: str) -> list[float]:
        seed = int.from_bytes(hashlib.sha256(f"{space}|{text}".encode()).digest()[:8], "big")
        values = np.random.default_rng(seed).normal(size=self.dimension)
        return [float(x) for x in values / np.linalg.norm(values)]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_in_space(texts).vectors

    def embed_in_space(self, texts: Sequence[str]) -> Embedded:
        self.texts += len(texts)
        rows = [self.vector(t, self.space) for t in texts]
        return Embedded(np.asarray(rows, dtype=np.float32).reshape(-1, self.dimension), self.space)


class Tenant:
    """Documents indexed the way the embedder-client indexes them: chunk set in the blob store,
    vectors of its embedding texts in the index."""

    def __init__(self, index: SearchIndex, blobs: LocalBlobStore, model: StandInEmbeddings):
        self.index, self.blobs, self.model = index, blobs, model

    def write(self, doc_id: str, version: str, texts: list[str]) -> ChunkSet:
        chunk_set = ChunkSet(
            title=f"Policy {doc_id}",
            source_label=f"handbook {doc_id}",
            chunks=[
                Chunk(chunk_id=f"{doc_id}:{version[:12]}:{i}", doc_id=doc_id, ordinal=i, text=t)
                for i, t in enumerate(texts)
            ],
        )
        self.blobs.put(chunks_key(TENANT, doc_id, version), chunk_set.model_dump_json().encode())
        self.index.upsert_document(record(doc_id, version))
        embedded = self.model.embed_in_space(embedding_texts(chunk_set))
        chunks = [
            IndexedChunk(**c.model_dump(), vector=v.tolist())
            for c, v in zip(chunk_set.chunks, embedded.vectors, strict=True)
        ]
        assert self.index.replace_chunks(TENANT, doc_id, version, chunks, space=embedded.space)
        return chunk_set

    def in_space(self, chunk_set: ChunkSet, space: str) -> bool:
        """Every chunk of the set is found by its own vector in ``space``, at a cosine of 1."""
        for chunk, text in zip(chunk_set.chunks, embedding_texts(chunk_set), strict=True):
            best = self.index.vector_search(TENANT, self.model.vector(text, space), 1, space=space)
            if [h.chunk_id for h in best] != [chunk.chunk_id] or best[0].score < 0.9999:
                return False
        return True


@pytest.fixture(params=["sqlite", "opensearch-fake"])
def tenant(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tenant]:
    index: SqliteSearchIndex | OpenSearchIndex
    if request.param == "sqlite":
        index = SqliteSearchIndex(tmp_path / "index")
    else:
        fake = request.getfixturevalue("fake_opensearch")
        index = OpenSearchIndex(OpenSearch(hosts=[fake.url]), prefix="t-", replicas=0)
    yield Tenant(index, LocalBlobStore(tmp_path / "blobs"), StandInEmbeddings(SPACE))
    index.close()


def test_every_chunk_moves_to_the_new_space_at_once(tenant: Tenant) -> None:
    sets = [tenant.write(f"d{i}", "v1", [f"Rule {i}a.", f"Rule {i}b."]) for i in range(3)]
    tenant.model.space = OTHER_SPACE  # the model changes
    steps: list[Progress] = []
    done = Reembedder(tenant.index, tenant.blobs, tenant.model, progress=steps.append).reembed(
        TENANT
    )
    assert (done.old_space, done.space, done.documents, done.chunks) == (SPACE, OTHER_SPACE, 3, 6)
    assert done.rounds == 2  # one round of embedding, then the swap
    assert [(s.documents, s.chunks, s.pending) for s in steps] == [(1, 2, 2), (2, 4, 1), (3, 6, 0)]
    assert tenant.index.vector_space(TENANT) == OTHER_SPACE
    assert all(tenant.in_space(s, OTHER_SPACE) for s in sets)


def test_a_document_changed_during_the_run_is_embedded_in_the_next_round(tenant: Tenant) -> None:
    tenant.write("d0", "v1", ["Parental leave."])
    tenant.write("d1", "v1", ["Sick leave."])
    old_model = StandInEmbeddings(SPACE)  # an embedder-client still on the old model
    changed: list[ChunkSet] = []

    def meanwhile(step: Progress) -> None:
        if step.documents == 1:
            changed.append(
                Tenant(tenant.index, tenant.blobs, old_model).write("d1", "v2", ["New."])
            )

    tenant.model.space = OTHER_SPACE
    done = Reembedder(tenant.index, tenant.blobs, tenant.model, progress=meanwhile).reembed(TENANT)
    assert done.rounds == 3 and done.documents == 3  # d0, d1 v1, then d1 v2
    assert tenant.in_space(changed[0], OTHER_SPACE)


def test_nothing_to_do_in_the_same_space(tenant: Tenant) -> None:
    tenant.write("d0", "v1", ["Parental leave."])
    texts = tenant.model.texts
    done = Reembedder(tenant.index, tenant.blobs, tenant.model).reembed(TENANT)
    assert (done.rounds, done.documents) == (0, 0)
    assert tenant.model.texts == texts + 1  # the probe that asks the endpoint's space


def test_a_lost_chunk_set_is_named_and_nothing_is_swapped(tenant: Tenant) -> None:
    tenant.write("d0", "v1", ["Parental leave."])
    tenant.blobs.delete(chunks_key(TENANT, "d0", "v1"))
    tenant.model.space = OTHER_SPACE
    with pytest.raises(PermanentError, match=r"'d0'.*gone from the blob store"):
        Reembedder(tenant.index, tenant.blobs, tenant.model).reembed(TENANT)
    assert tenant.index.vector_space(TENANT) == SPACE


def test_an_endpoint_that_changes_model_during_the_run_stops_it(tenant: Tenant) -> None:
    tenant.write("d0", "v1", ["Parental leave."])
    tenant.write("d1", "v1", ["Sick leave."])
    tenant.model.space = OTHER_SPACE

    def swap_again(step: Progress) -> None:
        tenant.model.space = "third-model/fp32/384"

    with pytest.raises(RetryableError, match="moved from"):
        Reembedder(tenant.index, tenant.blobs, tenant.model, progress=swap_again).reembed(TENANT)
    assert tenant.index.vector_space(TENANT) == SPACE
