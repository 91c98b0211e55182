"""Rows of a tenant's index file: documents, chunks and their terms, read and written in the
caller's transaction (``write`` begins one that takes the write lock up front)."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from datatorag.adapters.index.sqlite import bm25
from datatorag.domain.models import DocumentRecord, DocumentStatus, IndexedChunk, SearchHit
from datatorag.domain.tenants import validate_tenant
from datatorag.domain.vectors import FloatArray

DOCUMENT_COLUMNS = (
    "doc_id, source_id, source_uri, title, media_type, version, status, reason, size_bytes, "
    "page_count, chunk_count, metadata, updated_at"
)

HIT_COLUMNS = "c.chunk_id, c.doc_id, d.title, d.source_uri, c.pages, c.ocr_pages, t.heading, t.text"


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the lock up front (no upgrade deadlocks between writers)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def meta(conn: sqlite3.Connection, key: str) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])


def bump_generation(conn: sqlite3.Connection) -> int:
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
    return meta(conn, "generation")


def check_dimension(conn: sqlite3.Connection, dimension: int) -> None:
    if dimension == 0:
        return
    known = meta(conn, "dimension")
    if known == 0:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'dimension'", (dimension,))
    elif known != dimension:
        raise ValueError(f"chunk vectors have {dimension} dimensions; the index holds {known}")


def version_and_status(conn: sqlite3.Connection, doc_id: str) -> tuple[str, str] | None:
    row = conn.execute("SELECT version, status FROM documents WHERE doc_id = ?", (doc_id,))
    found = row.fetchone()
    return (found[0], found[1]) if found else None


def drop_chunks(conn: sqlite3.Connection, doc_id: str, tombstone_window: int) -> None:
    """Delete a document's chunks inside the caller's write transaction; tombstones older than
    ``tombstone_window`` generations are forgotten (readers that far behind reload)."""
    generation = bump_generation(conn)
    conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
    floor = generation - tombstone_window
    if floor > 0:
        conn.execute("DELETE FROM chunk_tombstones WHERE generation <= ?", (floor,))
        conn.execute("UPDATE meta SET value = ? WHERE key = 'tombstone_floor'", (floor,))


def insert_chunk(
    conn: sqlite3.Connection,
    chunk: IndexedChunk,
    vector: FloatArray,
    title: str,
    copied: Sequence[Any],  # the document's source_id, media_type and metadata (JSON)
    terms: tuple[int, bytes],  # length and encoded postings (chunk_terms)
) -> None:
    row = conn.execute(
        "INSERT INTO chunks (doc_id, chunk_id, ordinal, source_id, media_type, metadata, pages, "
        "token_count, ocr_pages) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            chunk.doc_id,
            chunk.chunk_id,
            chunk.ordinal,
            *copied,
            json.dumps(chunk.pages),
            chunk.token_count,
            json.dumps(chunk.ocr_pages),
        ),
    ).lastrowid
    conn.execute(
        "INSERT INTO chunk_texts (id, title, heading, text) VALUES (?, ?, ?, ?)",
        (row, title, chunk.heading, chunk.text),
    )
    conn.execute("INSERT INTO chunk_vectors (id, vector) VALUES (?, ?)", (row, vector.tobytes()))
    conn.execute("INSERT INTO chunk_terms (id, length, postings) VALUES (?, ?, ?)", (row, *terms))


Counted = tuple[int, Counter[str]]  # a column's token count and term counts


def chunk_terms(
    conn: sqlite3.Connection, columns: Sequence[tuple[Counted, Counted, Counted]]
) -> list[tuple[int, bytes]]:
    """Each chunk's length and encoded postings, given its title, heading and text counts;
    new terms get ids (inside the caller's write transaction)."""
    weighed = [bm25.weigh(c) for c in columns]
    words = json.dumps(sorted({t for _, frequencies in weighed for t in frequencies}))
    conn.execute("INSERT OR IGNORE INTO terms (term) SELECT value FROM json_each(?)", (words,))
    ids = known_terms(conn, json.loads(words))
    return [
        (length, bm25.encode([ids[t] for t in frequencies], list(frequencies.values())))
        for length, frequencies in weighed
    ]


def known_terms(conn: sqlite3.Connection, terms: Collection[str]) -> dict[str, int]:
    rows = conn.execute(
        "SELECT t.term, t.id FROM json_each(?) AS j JOIN terms t ON t.term = j.value",
        (json.dumps(list(terms)),),
    )
    return dict(rows.fetchall())


def document_row(doc: DocumentRecord) -> tuple[Any, ...]:
    validate_tenant(doc.tenant)
    data = doc.model_dump(mode="json")
    return (
        doc.doc_id,
        doc.source_id,
        doc.source_uri,
        doc.title,
        doc.media_type,
        doc.version,
        DocumentStatus(doc.status).value,
        doc.reason,
        doc.size_bytes,
        doc.page_count,
        doc.chunk_count,
        json.dumps(data["metadata"]),
        doc.updated_at.isoformat(),
    )


def document(tenant: str, row: Sequence[Any]) -> DocumentRecord:
    return DocumentRecord(
        tenant=tenant,
        doc_id=row[0],
        source_id=row[1],
        source_uri=row[2],
        title=row[3],
        media_type=row[4],
        version=row[5],
        status=DocumentStatus(row[6]),
        reason=row[7],
        size_bytes=row[8],
        page_count=row[9],
        chunk_count=row[10],
        metadata=json.loads(row[11]),
        updated_at=datetime.fromisoformat(row[12]),
    )


def _hit(row: Sequence[Any]) -> SearchHit:
    chunk_id, doc_id, title, source_uri, pages, ocr_pages, heading, text, score = row
    return SearchHit(
        chunk_id=chunk_id,
        doc_id=doc_id,
        title=title,
        source_uri=source_uri,
        pages=json.loads(pages),
        ocr_pages=json.loads(ocr_pages),
        heading=heading,
        text=text,
        score=float(score),
    )


def fetch_hits(conn: sqlite3.Connection, rowids: list[int], scores: list[float]) -> list[SearchHit]:
    """The hits of chunk rows ``rowids`` with their ``scores``, in that order."""
    if not rowids:
        return []
    rows = conn.execute(
        f"SELECT c.id, {HIT_COLUMNS} FROM chunks c JOIN chunk_texts t ON t.id = c.id "  # noqa: S608
        "JOIN documents d ON d.doc_id = c.doc_id "
        "WHERE c.id IN (SELECT value FROM json_each(?))",
        (json.dumps(rowids),),
    ).fetchall()
    by_id = {row[0]: row[1:] for row in rows}
    return [_hit((*by_id[r], s)) for r, s in zip(rowids, scores, strict=True) if r in by_id]
