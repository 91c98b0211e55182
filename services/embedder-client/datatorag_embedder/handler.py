"""Embeds a chunk set and swaps it into the index; drops removed documents."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from datatorag.domain.errors import (
    BlobNotFound,
    EmbeddingUnavailable,
    PermanentError,
    RetryableError,
)
from datatorag.domain.messages import ChunksReady, DocumentRemoved, Message
from datatorag.domain.models import ChunkSet, DocumentFacts, DocumentStatus, IndexedChunk
from datatorag.log import get_logger
from datatorag.ports import BlobStore, Embedded, Embeddings, SearchIndex
from datatorag.usecases.reembed import embedding_texts
from datatorag.usecases.removal import remove_document

log = get_logger(__name__)

SPACE_ATTEMPTS = 2


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
        embedded = self.embed(embedding_texts(chunk_set))
        indexed = [
            IndexedChunk(**c.model_dump(), vector=v.tolist())
            for c, v in zip(chunk_set.chunks, embedded.vectors, strict=True)
        ]
        # A tenant indexed in another space refuses these (VectorSpaceMismatch, retryable): the
        # version searchable now stays so until `datatorag reembed` moves the tenant.
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
            space=embedded.space,
        )
        log.info("document.indexed" if swapped else "document.stale", chunks=len(indexed))

    def embed(self, texts: Sequence[str]) -> Embedded:
        """Every text's vector, all in one embedding space (the model may be swapped between
        two batches: then all of them are embedded again, in the new one)."""
        for _ in range(SPACE_ATTEMPTS):
            batches = [
                self._embed_batch(texts[i : i + self.batch_size])
                for i in range(0, len(texts), self.batch_size)
            ]
            if not batches:
                return self.embeddings.embed_in_space([])
            spaces = {b.space for b in batches}
            if len(spaces) == 1:
                return Embedded(np.concatenate([b.vectors for b in batches]), spaces.pop())
        raise EmbeddingUnavailable(f"the embedding space kept changing: {sorted(spaces)}")

    @retry(
        retry=retry_if_exception_type(RetryableError),
        wait=wait_exponential_jitter(multiplier=0.5, max=10),
        stop=stop_after_attempt(5),
        reraise=True,
    )
    def _embed_batch(self, texts: Sequence[str]) -> Embedded:
        started = time.perf_counter()
        embedded = self.embeddings.embed_in_space(texts)
        log.info("embed.batch", size=len(texts), seconds=round(time.perf_counter() - started, 4))
        return embedded

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
