"""The layout of a tenant's index file, and migrations from older layouts.

A chunk is split in four tables so that each reader reads what it needs (see ``SCHEMA``); a
file's ``user_version`` is its layout, and opening an older file migrates it in place.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator

from datatorag.adapters.index.sqlite import bm25
from datatorag.adapters.index.sqlite.store import Counted, chunk_terms

# 1 had an FTS5 table, 2 stored the terms of FTS5's tokenizer: opening either re-tokenises
# its chunks (_retokenise). 4 added chunks.ocr_pages (the pages of a chunk read by OCR).
# 5 added ``space`` (the embedding space of the vectors) and ``staged_vectors`` (re-embedding).
SCHEMA_VERSION = 5
BACKFILL_BATCH = 2000  # chunks tokenised per step when an older file is migrated

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('generation', 0), ('tombstone_floor', 0), ('dimension', 0);
-- The embedding space the tenant's vectors are in (domain.spaces); no row until a write says.
CREATE TABLE IF NOT EXISTS space (
    only INTEGER PRIMARY KEY CHECK (only = 1), name TEXT NOT NULL
);
-- A re-embed's vectors in the space the tenant is moving to, by chunk id: never searched,
-- swapped into chunk_vectors all at once (store.swap_space).
CREATE TABLE IF NOT EXISTS staged_vectors (
    chunk_id TEXT PRIMARY KEY, space TEXT NOT NULL, vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    source_id TEXT NOT NULL,
    source_uri TEXT NOT NULL,
    title TEXT NOT NULL,
    media_type TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    size_bytes INTEGER NOT NULL,
    page_count INTEGER,
    chunk_count INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_by_uri ON documents (source_uri, doc_id);
CREATE INDEX IF NOT EXISTS documents_by_source ON documents (source_id, source_uri, doc_id);
-- A chunk is split in four tables so that each reader reads what it needs: ``chunks`` (what
-- filters and hits need), ``chunk_texts`` (read for hits), ``chunk_vectors`` and
-- ``chunk_terms`` (read only when a process loads its snapshot). ``chunk_terms.postings`` holds
-- bm25.POSTING records: ids from ``terms`` (never deleted, so ids stay valid) and weighted
-- counts; ``length`` is the chunk's token count.
-- AUTOINCREMENT: ids are never reused, so "id > the last one I loaded" finds every new chunk.
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    source_id TEXT NOT NULL,
    media_type TEXT NOT NULL,
    metadata TEXT NOT NULL,
    pages TEXT NOT NULL,
    token_count INTEGER NOT NULL,
    ocr_pages TEXT NOT NULL DEFAULT '[]',
    UNIQUE (doc_id, chunk_id)
);
CREATE TABLE IF NOT EXISTS chunk_texts (
    id INTEGER PRIMARY KEY, title TEXT NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunk_vectors (id INTEGER PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS chunk_terms (
    id INTEGER PRIMARY KEY, length INTEGER NOT NULL, postings BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS terms (id INTEGER PRIMARY KEY, term TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS chunk_tombstones (
    chunk_rowid INTEGER PRIMARY KEY, generation INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunk_tombstones_by_generation ON chunk_tombstones (generation);
CREATE TRIGGER IF NOT EXISTS chunks_delete AFTER DELETE ON chunks BEGIN
    DELETE FROM chunk_texts WHERE id = old.id;
    DELETE FROM chunk_vectors WHERE id = old.id;
    DELETE FROM chunk_terms WHERE id = old.id;
    INSERT INTO chunk_tombstones
    VALUES (old.id, (SELECT value FROM meta WHERE key = 'generation'));
END;
CREATE TRIGGER IF NOT EXISTS chunks_immutable BEFORE UPDATE ON chunks BEGIN
    SELECT RAISE(ABORT, 'chunks are immutable: replace them');
END;
CREATE TRIGGER IF NOT EXISTS chunk_texts_immutable BEFORE UPDATE ON chunk_texts BEGIN
    SELECT RAISE(ABORT, 'chunks are immutable: replace them');
END;
CREATE TRIGGER IF NOT EXISTS chunk_vectors_immutable BEFORE UPDATE ON chunk_vectors BEGIN
    SELECT RAISE(ABORT, 'chunks are immutable: replace them');
END;
CREATE TRIGGER IF NOT EXISTS chunk_terms_immutable BEFORE UPDATE ON chunk_terms BEGIN
    SELECT RAISE(ABORT, 'chunks are immutable: replace them');
END;
PRAGMA user_version = {SCHEMA_VERSION};
"""  # noqa: S608 (constants only)

# Version 1 kept an FTS5 index of chunk_texts, maintained by triggers.
DROP_V1 = (
    "DROP TRIGGER IF EXISTS chunk_texts_insert",
    "DROP TRIGGER IF EXISTS chunk_texts_delete",
    "DROP TRIGGER IF EXISTS chunks_delete",  # recreated: it now also deletes chunk_terms
    "DROP TABLE IF EXISTS chunks_fts",
)


def create_schema(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return  # another process created it while we waited for the lock
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"the index file has schema version {version}; this DatatoRAG reads up to "
            f"{SCHEMA_VERSION}: upgrade it"
        )
    if version == 1:
        for statement in DROP_V1:
            conn.execute(statement)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(chunks)")}
    if columns and "ocr_pages" not in columns:  # files before version 4
        conn.execute("ALTER TABLE chunks ADD COLUMN ocr_pages TEXT NOT NULL DEFAULT '[]'")
    for statement in _split_statements(SCHEMA):
        conn.execute(statement)
    if 0 < version < 3:
        _retokenise(conn)
    conn.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (secrets.randbits(62),))


def _retokenise(conn: sqlite3.Connection) -> None:
    """Store the term counts of every chunk of an older file, with the current tokenizer:
    version 1 had none (it ranked with FTS5), version 2 those of FTS5's tokenizer. Old terms
    stay in ``terms``: ids held by readers of the older release keep their meaning."""
    conn.execute("DELETE FROM chunk_terms")
    titles: dict[str, Counted] = {}  # a document's chunks share its title
    last = 0
    while True:
        rows = conn.execute(
            "SELECT id, title, heading, text FROM chunk_texts WHERE id > ? ORDER BY id LIMIT ?",
            (last, BACKFILL_BATCH),
        ).fetchall()
        if not rows:
            return
        columns = []
        for _, title, heading, text in rows:
            counted = titles.get(title)
            if counted is None:
                counted = titles[title] = bm25.column_counts(title)
            columns.append((counted, bm25.column_counts(heading), bm25.column_counts(text)))
        conn.executemany(
            "INSERT INTO chunk_terms (id, length, postings) VALUES (?, ?, ?)",
            [(r[0], *t) for r, t in zip(rows, chunk_terms(conn, columns), strict=True)],
        )
        last = rows[-1][0]


def _split_statements(script: str) -> Iterator[str]:
    # Not executescript(): on Python 3.11 it commits first, which would end BEGIN IMMEDIATE.
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
