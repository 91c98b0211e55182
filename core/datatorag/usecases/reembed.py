"""Re-embedding a tenant into the endpoint's current embedding space, without downtime.

When the model or its weights change (``domain.spaces``), a tenant's vectors can no longer be
compared with new questions: searches fall back to keywords and new documents wait. This moves
the tenant: every chunk's text is embedded again from the chunk set the processor stored (the
very text the embedder-client embedded), staged beside the searched vectors, and swapped in at
once (``SpaceMigration``). Searches keep answering from the old vectors until the swap.

Documents that change meanwhile show up as chunks without a staged vector at the swap; they are
embedded in the next round.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from datatorag.domain.blob_keys import chunks_prefix
from datatorag.domain.errors import PermanentError, RetryableError
from datatorag.domain.models import ChunkSet
from datatorag.domain.text import contextual_text
from datatorag.ports import BlobStore, Embeddings, SearchIndex

MAX_ROUNDS = 5  # swaps tried; each round embeds what changed during the one before


@dataclass(frozen=True)
class Progress:
    documents: int  # chunk sets embedded so far
    chunks: int
    pending: int  # documents still to embed in this round


@dataclass(frozen=True)
class Reembedded:
    tenant: str
    old_space: str | None
    space: str
    documents: int
    chunks: int
    rounds: int
    seconds: float


def embedding_texts(chunk_set: ChunkSet) -> list[str]:
    """What is embedded for each chunk: its text in the context of its document."""
    return [
        contextual_text(chunk_set.title, c.heading, c.text, chunk_set.source_label)
        for c in chunk_set.chunks
    ]


class Reembedder:
    def __init__(
        self,
        index: SearchIndex,
        blobs: BlobStore,
        embeddings: Embeddings,
        *,
        batch_size: int = 32,
        progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.index = index
        self.blobs = blobs
        self.embeddings = embeddings
        self.batch_size = batch_size
        self.progress = progress or (lambda _: None)

    def target_space(self) -> str:
        """The space the endpoint embeds in now."""
        return self.embeddings.embed_in_space(["embedding space probe"]).space

    def reembed(self, tenant: str) -> Reembedded:
        """Move the tenant into the endpoint's current space; nothing to do when it is there."""
        started = time.monotonic()
        old, space = self.index.vector_space(tenant), self.target_space()
        documents = chunks = 0
        if old == space:
            return Reembedded(tenant, old, space, 0, 0, 0, 0.0)
        for round_ in range(1, MAX_ROUNDS + 1):
            # Another re-embed of this tenant may have finished meanwhile.
            done = self.index.vector_space(tenant) == space
            missing = [] if done else self.index.swap_space(tenant, space)
            if not missing:
                seconds = time.monotonic() - started
                return Reembedded(tenant, old, space, documents, chunks, round_, seconds)
            versions = _versions(missing)
            for i, (doc_id, prefix) in enumerate(versions):
                chunks += self._stage(tenant, space, doc_id, prefix)
                documents += 1
                self.progress(Progress(documents, chunks, len(versions) - i - 1))
        raise RetryableError(
            f"tenant {tenant!r} kept changing: {MAX_ROUNDS} swaps did not catch up"
        )

    def _stage(self, tenant: str, space: str, doc_id: str, prefix: str) -> int:
        """Embed the chunk set whose chunks carry ``prefix`` (a version's first characters) and
        stage its vectors; returns how many."""
        chunk_set = self._chunk_set(tenant, doc_id, prefix)
        texts = embedding_texts(chunk_set)
        staged: dict[str, list[float]] = {}
        for start in range(0, len(texts), self.batch_size):
            embedded = self.embeddings.embed_in_space(texts[start : start + self.batch_size])
            if embedded.space != space:
                raise RetryableError(
                    f"the endpoint moved from {space!r} to {embedded.space!r} during the re-embed"
                )
            for chunk, vector in zip(
                chunk_set.chunks[start : start + self.batch_size], embedded.vectors, strict=True
            ):
                staged[chunk.chunk_id] = vector.tolist()
        self.index.stage_vectors(tenant, space, staged)
        return len(staged)

    def _chunk_set(self, tenant: str, doc_id: str, prefix: str) -> ChunkSet:
        folder = chunks_prefix(tenant, doc_id)
        for key in self.blobs.list(folder):
            if key[len(folder) :].startswith(prefix):
                return ChunkSet.model_validate_json(self.blobs.get(key))
        raise PermanentError(
            f"document {doc_id!r} of tenant {tenant!r}: its chunk set ({folder}{prefix}...) is "
            "gone from the blob store; delete the document or sync it again, then re-embed"
        )


def _versions(chunk_ids: Sequence[str]) -> list[tuple[str, str]]:
    """The (doc_id, version prefix) of each chunk set the chunks come from, once each (a chunk
    id is ``<doc_id>:<version[:12]>:<ordinal>``)."""
    return sorted({(c.rsplit(":", 2)[0], c.rsplit(":", 2)[1]) for c in chunk_ids})
