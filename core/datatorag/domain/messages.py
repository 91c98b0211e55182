"""Queue message schemas, versioned.

Every message carries ``kind`` and ``schema_version``; a consumer decodes with ``decode`` and
refuses what it does not know (that is a permanent failure: the message goes to the DLQ).
Payloads stay small: documents and chunk sets travel through the blob store by key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from datatorag.domain.errors import PermanentError

DOCUMENTS_QUEUE = "documents"  # connector -> processor
CHUNKS_QUEUE = "chunks"  # processor (and connector, for removals) -> embedder-client
DLQ_SUFFIX = "-dlq"  # every queue's dead-letter queue is named after it
REDRIVE_REASON = "max receives exceeded"  # reason shown for messages the queue moved itself


class _Message(BaseModel):
    schema_version: Literal[1] = 1
    tenant: str
    doc_id: str


class DocumentFetched(_Message):
    """A new or changed raw document sits in the blob store under ``blob_key``."""

    kind: Literal["document.fetched"] = "document.fetched"
    version: str
    blob_key: str
    source_uri: str
    filename: str
    media_type: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class ChunksReady(_Message):
    """A parsed version's chunks sit in the blob store (JSON lines) under ``chunks_key``."""

    kind: Literal["chunks.ready"] = "chunks.ready"
    version: str
    chunks_key: str
    chunk_count: int
    page_count: int | None = None


class DocumentRemoved(_Message):
    """The document left its source: drop its chunks from the index."""

    kind: Literal["document.removed"] = "document.removed"


Message = DocumentFetched | ChunksReady | DocumentRemoved
_adapter: TypeAdapter[Message] = TypeAdapter(Annotated[Message, Field(discriminator="kind")])


def encode(message: Message) -> str:
    return message.model_dump_json()


def decode(body: str) -> Message:
    try:
        return _adapter.validate_json(body)
    except ValidationError as err:
        raise PermanentError(
            f"unreadable queue message: {err.error_count()} schema errors"
        ) from err
