"""Embeds a chunk set and swaps it into the index; drops removed documents."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from datatorag.domain.errors import BlobNotFound, PermanentError, RetryableError
from datatorag.domain.messages import ChunksReady, DocumentRemoved, Message
from datatorag.domain.models import ChunkSet, DocumentFacts, DocumentStatus, IndexedChunk
from datatorag.domain.text import contextual_text
from datatorag.log import get_logger
from datatorag.ports import BlobStore, Embeddings, SearchIndex, Vectors
from datatorag.usecases.removal import remove_document

log = get_logger(__name__)


class Embedder:
    def __init__(
        self, blobs: BlobStore, index: SearchIndex, embeddings: Embeddings, *, batch_size: int = 32
    ) -> None:
        self.blobs = blobs
        self.index = index
        self.embeddings = embeddings
        self.batch_size = batch_size

    def handle(self, message: Message) -> None:
        if isinstance(message, DocumentRemoved):
            remove_document(self.blobs, self.index, message.tenant, message.doc_id)
            log.info("document.removed")
        elif isinstance(message, ChunksReady):
            self._index(message)
        else:
            raise PermanentError(f"the embedder-client does not handle {message.kind} messages")

    def _index(self, message: ChunksReady) -> None:
        doc = self.index.get_document(message.tenant, message.doc_id)
        if doc is None or doc.version != message.version or doc.status == DocumentStatus.DELETED:
            log.info("document.stale", version=message.version)
            return
        if doc.status == DocumentStatus.INDEXED:  # a redelivery or a re-announced version
            log.info("document.already_indexed", version=message.version)
            return
        try:
            chunk_set = ChunkSet.model_validate_json(self.blobs.get(message.chunks_key))
        except BlobNotFound as err:
            raise PermanentError(f"the chunk set is gone from the blob store ({err})") from err
        texts = [
            contextual_text(chunk_set.title, c.heading, c.text, chunk_set.source_label)
            for c in chunk_set.chunks
        ]
        vectors = self.embed(texts)
        indexed = [
            IndexedChunk(**c.model_dump(), vector=v.tolist())
            for c, v in zip(chunk_set.chunks, vectors, strict=True)
        ]
        swapped = self.index.replace_chunks(
            message.tenant,
            message.doc_id,
            message.version,
            indexed,
            facts=DocumentFacts(
                title=chunk_set.title,
                page_count=chunk_set.page_count,
                metadata=chunk_set.metadata,
            ),
        )
        log.info("document.indexed" if swapped else "document.stale", chunks=len(indexed))

    def embed(self, texts: Sequence[str]) -> Vectors:
        batches = [
            self._embed_batch(texts[i : i + self.batch_size])
            for i in range(0, len(texts), self.batch_size)
        ]
        return (
            np.concatenate(batches)
            if batches
            else np.zeros((0, self.embeddings.dimension), np.float32)
        )

    @retry(
        retry=retry_if_exception_type(RetryableError),
        wait=wait_exponential_jitter(multiplier=0.5, max=10),
        stop=stop_after_attempt(5),
        reraise=True,
    )
    def _embed_batch(self, texts: Sequence[str]) -> Vectors:
        started = time.perf_counter()
        vectors = self.embeddings.embed(texts)
        log.info("embed.batch", size=len(texts), seconds=round(time.perf_counter() - started, 4))
        return vectors

    def record_failure(self, message: Message, reason: str) -> None:
        version = getattr(message, "version", None)
        doc = self.index.get_document(message.tenant, message.doc_id)
        # A late redelivery given up on must not fail a version that is searchable.
        if doc is not None and doc.version == version and doc.status == DocumentStatus.INDEXED:
            log.info("document.already_indexed", version=version)
            return
        self.index.set_status(
            message.tenant, message.doc_id, DocumentStatus.FAILED, version=version, reason=reason
        )
