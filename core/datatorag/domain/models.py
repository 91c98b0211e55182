"""Domain types that cross service boundaries: documents, chunks and search hits."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

# The metadata keys a search filter can name (``metadata.<key>``).
METADATA_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def utcnow() -> datetime:
    return datetime.now(UTC)


def document_id(source_uri: str) -> str:
    """Stable id of a document: the same file in the same source always gets the same id."""
    return "doc_" + hashlib.sha256(source_uri.encode()).hexdigest()[:20]


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DocumentStatus(StrEnum):
    FETCHED = "fetched"  # raw file stored, announced to the processor
    PROCESSING = "processing"  # being parsed, chunked or embedded
    INDEXED = "indexed"  # this version's chunks are searchable
    FAILED = "failed"  # see ``reason``
    DELETED = "deleted"  # removed from its source; chunks gone


class DocumentRecord(BaseModel):
    """What the index knows about one document of one tenant (one row per document)."""

    tenant: str
    doc_id: str
    source_id: str  # the source it came from (``documents --source`` and removal sync use it)
    source_uri: str  # the file in its source, without credentials
    title: str
    media_type: str = "application/octet-stream"
    version: str  # content hash of the version announced last
    status: DocumentStatus = DocumentStatus.FETCHED
    reason: str | None = None  # why it failed, in words a person can act on
    size_bytes: int = 0
    page_count: int | None = None
    chunk_count: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    updated_at: datetime = Field(default_factory=utcnow)


class Chunk(BaseModel):
    """A passage as the processor cut it; ``text`` is what a hit shows."""

    chunk_id: str
    doc_id: str
    ordinal: int
    text: str
    pages: list[int] = Field(default_factory=list)
    ocr_pages: list[int] = Field(default_factory=list)  # pages read by OCR (scans): check quotes
    heading: str = ""  # heading path, outermost first, joined with " > "
    token_count: int = 0


def chunk_ordinal(chunk_id: str) -> int:
    """A chunk's position in its document, from the id the processor gave it."""
    return int(chunk_id.rsplit(":", 1)[1])


class IndexedChunk(Chunk):
    """A chunk with its embedding, ready for the index."""

    vector: list[float]


@dataclass(frozen=True)
class DocumentFacts:
    """What the processor found in a document itself, handed to the index with its chunks.

    ``title`` (when found) replaces the record's; ``page_count`` (when known) too; ``metadata``
    merges under the record's own, which came from the source and wins where both name a key.
    """

    title: str | None = None
    page_count: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class SearchHit(BaseModel):
    chunk_id: str
    doc_id: str
    title: str
    source_uri: str
    pages: list[int]
    heading: str
    text: str
    score: float
    # Whom the passage's own section says it is for, e.g. {"countries": ["GB"]} under a "UK"
    # heading; {} when it states nothing (domain.applicability.section_applicability).
    applies_to: dict[str, list[str]] = Field(default_factory=dict)
    ocr_pages: list[int] = Field(default_factory=list)  # of ``pages``, those read by OCR


class ChunkSet(BaseModel):
    """One version's chunks, as the processor hands them to the embedder-client (blob store)."""

    title: str
    source_label: str = ""  # the file's path in its source, as words (see datatorag.domain.text)
    page_count: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)  # what the document says of itself
    chunks: list[Chunk]
