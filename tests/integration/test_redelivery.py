"""A redelivered or re-announced message for a version already indexed costs nothing.

Real local adapters, the real chunker and the real embedding endpoint (counted); each message
goes through the shared Worker.process, so "skipped" also means "acknowledged" (deleted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.embeddings.http import HttpEmbeddings
from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.adapters.queue.sqlite import SqliteQueue
from datatorag.domain.messages import CHUNKS_QUEUE, DOCUMENTS_QUEUE, DocumentFetched, decode
from datatorag.domain.models import DocumentStatus
from datatorag.ports import Embedded, Vectors
from datatorag.settings import Settings
from datatorag.usecases.announce import announce_document
from datatorag.usecases.worker import Worker
from datatorag_embedder.handler import Embedder
from datatorag_processor.bootstrap import build_chunker
from datatorag_processor.handler import Processor

pytestmark = pytest.mark.integration

TENANT = "acme"
POLICY = b"# Expenses\n\nReceipts are due within 30 days of purchase.\n"


class CountingEmbeddings:
    """The real endpoint, counting the texts it is asked to embed."""

    def __init__(self, real: HttpEmbeddings) -> None:
        self.real = real
        self.texts = 0

    @property
    def dimension(self) -> int:
        return self.real.dimension

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self.embed_in_space(texts).vectors

    def embed_in_space(self, texts: Sequence[str]) -> Embedded:
        self.texts += len(texts)
        return self.real.embed_in_space(texts)


@dataclass
class Pipeline:
    blobs: LocalBlobStore
    index: SqliteSearchIndex
    documents: SqliteQueue
    chunks: SqliteQueue
    embeddings: CountingEmbeddings
    processor: Worker
    embedder: Worker
    delivered: list[str] = field(default_factory=list)  # message bodies, in delivery order

    def announce(self) -> str:
        return announce_document(
            self.blobs,
            self.index,
            self.documents,
            tenant=TENANT,
            source_id="drop",
            source_uri="file:///drop/expenses.md",
            path="expenses.md",
            data=POLICY,
            metadata={},
            known=None,
        ).doc_id

    def drain(self) -> None:
        """Deliver every waiting message, processor first, as the workers would."""
        for queue, worker in ((self.documents, self.processor), (self.chunks, self.embedder)):
            while received := queue.receive(max_messages=1):
                self.delivered.append(received[0].body)
                worker.process(received[0])

    def status(self, doc_id: str) -> DocumentStatus:
        doc = self.index.get_document(TENANT, doc_id)
        assert doc is not None
        return doc.status


@pytest.fixture
def pipeline(tmp_path: Path, embeddings: HttpEmbeddings) -> Pipeline:
    blobs = LocalBlobStore(tmp_path / "blobs")
    index = SqliteSearchIndex(tmp_path / "index")
    documents = SqliteQueue(
        tmp_path / "q.db", DOCUMENTS_QUEUE, max_receives=6, visibility_timeout=60
    )
    chunks = SqliteQueue(tmp_path / "q.db", CHUNKS_QUEUE, max_receives=6, visibility_timeout=60)
    processor = Processor(
        blobs, index, chunks, build_chunker(Settings(_env_file=None)),
        max_document_bytes=1 << 20, max_document_pages=10,
    )  # fmt: skip
    counting = CountingEmbeddings(embeddings)
    embedder = Embedder(blobs, index, counting)
    return Pipeline(
        blobs, index, documents, chunks, counting,
        Worker(documents, processor.handle, processor.record_failure, max_receives=5),
        Worker(chunks, embedder.handle, embedder.record_failure, max_receives=5),
    )  # fmt: skip


@pytest.fixture
def indexed(pipeline: Pipeline) -> str:
    """One document, processed and embedded once (one chunk)."""
    doc_id = pipeline.announce()
    pipeline.drain()
    assert pipeline.status(doc_id) == DocumentStatus.INDEXED and pipeline.embeddings.texts == 1
    return doc_id


def test_a_version_announced_twice_while_queued_is_embedded_once(pipeline: Pipeline) -> None:
    doc_id = pipeline.announce()
    pipeline.announce()  # a backlog: the next sync announces the same version again
    assert pipeline.documents.depth() == 2
    pipeline.drain()
    assert pipeline.status(doc_id) == DocumentStatus.INDEXED
    assert pipeline.embeddings.texts == 1
    assert pipeline.documents.depth() == pipeline.chunks.depth() == 0  # all acknowledged


def test_redelivered_messages_for_an_indexed_version_cost_nothing(
    pipeline: Pipeline, indexed: str
) -> None:
    fetched, ready = pipeline.delivered
    pipeline.documents.send(fetched)
    pipeline.chunks.send(ready)
    pipeline.drain()
    assert pipeline.documents.depth() == pipeline.chunks.depth() == 0  # acknowledged
    assert pipeline.delivered[2:] == [fetched, ready]  # the processor announced nothing new
    assert pipeline.embeddings.texts == 1
    assert pipeline.status(indexed) == DocumentStatus.INDEXED


def test_a_version_not_fully_indexed_is_still_processed(pipeline: Pipeline, indexed: str) -> None:
    # A worker died after the processor had started on it again: the version is not indexed.
    pipeline.index.set_status(TENANT, indexed, DocumentStatus.PROCESSING)
    pipeline.documents.send(pipeline.delivered[0])
    pipeline.drain()
    assert pipeline.embeddings.texts == 2
    assert pipeline.status(indexed) == DocumentStatus.INDEXED


def test_a_late_redelivery_given_up_on_leaves_the_indexed_version_alone(
    pipeline: Pipeline, indexed: str
) -> None:
    message = decode(pipeline.delivered[0])
    assert isinstance(message, DocumentFetched)
    pipeline.documents.send(pipeline.delivered[0])
    for _ in range(5):  # five deliveries whose deletes failed: received, never deleted
        [received] = pipeline.documents.receive(max_messages=1)
        pipeline.documents.change_visibility(received.receipt, 0)
    pipeline.drain()  # the sixth: the worker gives up on it
    assert len(pipeline.documents.dead_letters()) == 1
    doc = pipeline.index.get_document(TENANT, indexed)
    assert doc is not None and doc.status == DocumentStatus.INDEXED and doc.reason is None
    assert doc.version == message.version
