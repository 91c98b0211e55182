"""Wires the embedder-client from settings."""

from __future__ import annotations

from datatorag import wiring
from datatorag.domain.messages import CHUNKS_QUEUE
from datatorag.settings import Settings
from datatorag.usecases.worker import Worker
from datatorag_embedder.handler import Embedder

# Documents in flight at once: the endpoint cuts and merges their requests into full forward
# passes, provided enough texts are waiting. In a 1,000-document sync (11 chunks a document on
# average) 4 gave passes of 15 texts, 8 of 28 and 16 of 31.6, the last keeping the model busy
# (docs/benchmarks.md, "A 1,000-document sync from FTP").
CONCURRENCY = 16


def bootstrap(settings: Settings) -> Worker:
    embedder = Embedder(
        wiring.blob_store(settings),
        wiring.search_index(settings),
        wiring.embeddings(settings),
        batch_size=settings.embedding_batch_size,
    )
    return Worker(
        wiring.queue(settings, CHUNKS_QUEUE),
        embedder.handle,
        embedder.record_failure,
        max_receives=settings.max_receives,
        visibility_timeout_s=settings.visibility_timeout_s,
        poll_wait_s=settings.poll_wait_s,
    )
