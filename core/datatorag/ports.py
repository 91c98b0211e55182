"""The ports: what the services need from the outside world, and nothing backend-specific.

Each port has an embedded local adapter and an AWS one, both in ``datatorag.adapters.<port>``;
``datatorag.wiring`` picks one from settings. Every adapter of a
port passes the same behaviour suite in ``tests/contracts``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from datatorag.domain.activity import AdminAction, AnswerRecord, Feedback
from datatorag.domain.employees import Employee
from datatorag.domain.models import (
    DocumentFacts,
    DocumentRecord,
    DocumentStatus,
    IndexedChunk,
    SearchHit,
)

Vectors = npt.NDArray[np.float32]
Filters = Mapping[str, Any]


@runtime_checkable
class BlobStore(Protocol):
    """Raw documents and chunk sets, by key (``tenants/<tenant>/...``)."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what was there. Raises ``InvalidKey``."""

    def get(self, key: str) -> bytes:
        """Return the object. Raises ``BlobNotFound``."""

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix``, sorted."""


@dataclass(frozen=True)
class ReceivedMessage:
    message_id: str
    body: str
    receipt: str  # handle for delete/change_visibility; valid until the message is received again
    receive_count: int  # 1 on first delivery


@runtime_checkable
class Queue(Protocol):
    """An at-least-once queue with SQS semantics.

    A received message is hidden for the visibility timeout; if it is not deleted in that time it
    is delivered again with ``receive_count`` raised by one. Past ``max_receives`` deliveries the
    queue moves it to its dead-letter queue (SQS's redrive policy).
    """

    name: str

    def send(self, body: str) -> str:
        """Enqueue one message; returns its id."""

    def send_batch(self, bodies: Sequence[str]) -> list[str]:
        """Enqueue several messages; returns their ids in order."""

    def receive(
        self,
        max_messages: int = 1,
        wait_seconds: float = 0.0,
        visibility_timeout: float | None = None,
    ) -> list[ReceivedMessage]:
        """Up to ``max_messages`` visible messages, waiting up to ``wait_seconds`` for the first."""

    def delete(self, receipt: str) -> None:
        """Acknowledge a message. A stale receipt (message redelivered since) is ignored."""

    def change_visibility(self, receipt: str, timeout_seconds: float) -> None:
        """Keep a message hidden longer (long jobs) or release it now (``0``)."""

    def dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        """Move a message to the dead-letter queue now, with its reason (permanent failures)."""

    def dead_letters(self) -> list[tuple[str, str]]:
        """Bodies and reasons on the dead-letter queue (for operators and tests)."""

    def depth(self) -> int:
        """Approximate count of messages waiting or in flight."""


@runtime_checkable
class SpaceMigration(Protocol):
    """Moving a tenant's vectors to another embedding space while searches go on (re-embed).

    New vectors are staged beside the searched ones, invisible, then swapped in all at once.
    Every ``SearchIndex`` is one (``datatorag reembed`` runs on either).
    """

    def stage_vectors(
        self, tenant: str, space: str, vectors: Mapping[str, Sequence[float]]
    ) -> None:
        """Keep ``vectors`` (by chunk id) in ``space`` aside for ``swap_space``; vectors staged
        earlier for another space are dropped."""

    def swap_space(self, tenant: str, space: str) -> list[str]:
        """When every chunk of the tenant has a vector staged in ``space``, make them the
        searched vectors and ``space`` the tenant's, in one step, and return ``[]``; else change
        nothing and return the ids of the chunks that lack one, sorted."""


@runtime_checkable
class SearchIndex(SpaceMigration, Protocol):
    """Documents and their chunks, per tenant; keyword and vector search.

    Every method takes the tenant: an adapter never returns another tenant's documents or chunks.
    """

    def upsert_document(self, doc: DocumentRecord) -> None:
        """Create or replace the document's record (status, version, metadata)."""

    def get_document(self, tenant: str, doc_id: str) -> DocumentRecord | None: ...

    def list_documents(
        self,
        tenant: str,
        *,
        source_id: str | None = None,
        status: DocumentStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[DocumentRecord]:
        """Documents ordered by ``source_uri``."""

    def set_status(
        self,
        tenant: str,
        doc_id: str,
        status: DocumentStatus,
        *,
        version: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """Update status; with ``version``, only if it is still the document's version.

        Returns False (and changes nothing) when the document is missing or the version is stale.
        """

    def replace_chunks(
        self,
        tenant: str,
        doc_id: str,
        version: str,
        chunks: Sequence[IndexedChunk],
        *,
        facts: DocumentFacts | None = None,
        space: str | None = None,
    ) -> bool:
        """Atomic swap: ``version``'s chunks become visible and the old ones vanish in one step.

        Also marks the document indexed, with ``facts`` (what the document says of itself).
        Idempotent. Returns False and writes nothing when ``version`` is no longer the
        document's current version (a newer one was announced, or the document was deleted).

        ``space``: the embedding space of the chunks' vectors (``domain.spaces``). The tenant's
        first write records it; a write in another space raises ``VectorSpaceMismatch`` and
        writes nothing, unless the tenant has no chunks left (then its space becomes this one).
        None (tools, tests): neither checked nor recorded.
        """

    def vector_space(self, tenant: str) -> str | None:
        """The embedding space the tenant's vectors are in; None before any was recorded."""

    def delete_document(self, tenant: str, doc_id: str) -> None:
        """Drop the document's chunks and mark it deleted. Idempotent."""

    def keyword_search(
        self, tenant: str, query: str, top_k: int, filters: Filters | None = None
    ) -> list[SearchHit]:
        """BM25 ranking, best first; ``score`` is higher-is-better."""

    def vector_search(
        self,
        tenant: str,
        vector: Sequence[float],
        top_k: int,
        filters: Filters | None = None,
        *,
        space: str | None = None,
    ) -> list[SearchHit]:
        """Cosine similarity to a normalised query vector, best first.

        ``space``: the query vector's embedding space; when the tenant's recorded space is
        another, raises ``VectorSpaceMismatch`` instead of comparing across spaces.
        """

    def close(self) -> None: ...


@dataclass(frozen=True)
class Embedded:
    vectors: Vectors
    space: str  # the embedding space they are in (``domain.spaces``)


@runtime_checkable
class Embeddings(Protocol):
    """Turns texts into L2-normalised vectors (the SageMaker inference contract)."""

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Shape ``(len(texts), dimension)``, float32, unit norm.

        Raises ``EmbeddingUnavailable`` (retryable) when the endpoint cannot answer.
        """

    def embed_in_space(self, texts: Sequence[str]) -> Embedded:
        """``embed``, and the space the endpoint says these very vectors are in (the model may
        be swapped between two calls). Vectors of one call are all in one space."""


@dataclass(frozen=True)
class AnswerSentence:
    text: str
    sources: tuple[int, ...]  # positions in the passages handed to the generator (0-based)
    quotes: tuple[str, ...] = ()  # for each source, the words of that passage that back it


@dataclass(frozen=True)
class GeneratedAnswer:
    sentences: tuple[AnswerSentence, ...]
    abstained: bool  # the passages do not answer the question
    # 0..1, how well the passages support the answer, when the generator can tell (the
    # extractive one: the share of the question's key terms its lead sentence covers)
    confidence: float | None = None


@runtime_checkable
class AnswerGenerator(Protocol):
    """Writes an answer from retrieved passages only.

    A sentence can cite only passages it was given (by position), so a citation of something
    that was not retrieved cannot be expressed; the query service drops any sentence without a
    valid source. Raises ``RetryableError`` when a remote model is unavailable.
    """

    def generate(self, question: str, passages: Sequence[SearchHit]) -> GeneratedAnswer: ...


@runtime_checkable
class Reranker(Protocol):
    """Orders retrieved passages by how well each answers the question, best first.

    Returns at most ``top_k`` of the passages given (the same objects, ``score`` set to the
    reranker's relevance where it has one). Raises ``RetryableError`` when a remote reranker is
    unavailable and ``PermanentError`` when it refuses the request.
    """

    def rerank(
        self, question: str, passages: Sequence[SearchHit], top_k: int
    ) -> list[SearchHit]: ...


@runtime_checkable
class EmployeeFeed(Protocol):
    """A source that also knows the tenant's workers (an HR system): read for the directory."""

    def employees(self) -> Iterator[Employee]:
        """Every current worker, minimised to ``Employee``'s fields. Raises ``SourceError``."""


@runtime_checkable
class ActivityLog(Protocol):
    """The question log and the audit log of each tenant (what was answered, what admins did).

    Entries are appended, never changed; reads return a tenant's entries with
    ``since <= at < until``, oldest first. ``purge`` deletes a tenant's entries older than
    ``before`` (retention).
    """

    def record_answer(self, entry: AnswerRecord) -> None: ...

    def record_feedback(self, entry: Feedback) -> bool:
        """Store feedback on one of the tenant's answers; False when the tenant has no such
        answer (feedback can never reach another tenant's log)."""

    def record_admin(self, entry: AdminAction) -> None: ...

    def answers(self, tenant: str, since: datetime, until: datetime) -> list[AnswerRecord]: ...

    def feedback(self, tenant: str, since: datetime, until: datetime) -> list[Feedback]: ...

    def admin_actions(self, tenant: str, since: datetime, until: datetime) -> list[AdminAction]: ...

    def purge(self, tenant: str, before: datetime) -> int:
        """Delete the tenant's entries older than ``before``; returns how many went."""


@runtime_checkable
class SecretStore(Protocol):
    """Credentials, encrypted at rest; read back only by the services that use them.

    Names are ``/``-separated words of letters, digits, ``_``, ``.`` and ``-``.
    """

    def put(self, name: str, value: str) -> None:
        """Store ``value`` under ``name``, replacing what was there."""

    def get(self, name: str) -> str:
        """The value. Raises ``SecretNotFound``; ``SecretUnreadable`` if it cannot be decrypted."""

    def delete(self, name: str) -> None:
        """Remove the secret; deleting a missing one is not an error."""


@runtime_checkable
class EmployeeDirectory(Protocol):
    """Each tenant's workers, minimised to ``Employee``'s fields (nothing else is stored)."""

    def get(self, tenant: str, employee_id: str) -> Employee | None: ...

    def put(self, tenant: str, employee: Employee) -> None:
        """Create or replace one worker (a webhook's update)."""

    def remove(self, tenant: str, employee_id: str) -> None:
        """Forget one worker; a missing one is not an error."""

    def replace_all(self, tenant: str, employees: Iterable[Employee]) -> int:
        """The tenant's workers become exactly ``employees`` (a full sync); returns how many."""


@dataclass(frozen=True)
class OcrLine:
    """One line of text read from a page image, in the page's reading order.

    The box is in fractions of the image's width and height from its top-left corner, as
    Textract's ``Geometry.BoundingBox`` gives it, so the PDF extractor can place the line on the
    page in points whatever the image's resolution.
    """

    text: str
    left: float
    top: float
    width: float
    height: float
    confidence: float  # 0-100, the mean of the line's words


@runtime_checkable
class Ocr(Protocol):
    """Reads the text of scanned pages (images with no text layer)."""

    def recognise(self, images: Sequence[bytes], *, timeout_s: float) -> list[list[OcrLine]]:
        """For each PNG page image, its lines in reading order (empty when none were read).

        Gives up within ``timeout_s`` for all the pages together, raising ``OcrTimeout``.
        Raises ``RetryableError`` when a remote service is busy or unreachable.
        """
