"""The embedded search index: one SQLite file per tenant, BM25 and vectors in memory.

Isolation is physical: ``<root>/<tenant>.db`` holds one tenant's documents and chunks, so a query
can only ever read its own tenant's file (``connections.py``; the file's layout and migrations
are ``schema.py``, its rows ``store.py``).

Each process keeps a tenant's vectors as a float32 matrix in memory and scores a query with one
matrix-vector product; tenants above a size threshold are searched on an HNSW graph beside it
(``ann.py``), and exactly while it is being built or when a filter lets few rows through.
Keyword search ranks with BM25 (FTS5's formula) from postings kept beside the matrix
(``bm25.py``): each chunk's weighted term counts are stored when it is written (``chunk_terms``),
so loading them only decodes arrays. ``snapshot.py`` keeps both in step with the file,
``snapshot_cache.py`` holds each tenant's latest within a memory budget (the least recently
searched tenants are dropped past it). ``spaces.py`` records the embedding space of the tenant's
vectors, refuses others, and swaps in a re-embed's vectors.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from datatorag.adapters.index.sqlite import bm25, spaces
from datatorag.adapters.index.sqlite.ann import AnnConfig, Approximate
from datatorag.adapters.index.sqlite.connections import ConnectionPool
from datatorag.adapters.index.sqlite.snapshot import Snapshot, keyword_top_k, vector_top_k
from datatorag.adapters.index.sqlite.snapshot_cache import (
    DEFAULT_MEMORY_BYTES,
    CacheStats,
    SnapshotCache,
)
from datatorag.adapters.index.sqlite.store import (
    DOCUMENT_COLUMNS,
    check_dimension,
    chunk_terms,
    document,
    document_row,
    drop_chunks,
    fetch_hits,
    insert_chunk,
    known_terms,
    meta,
    version_and_status,
    write,
)
from datatorag.domain.filters import Filter, parse_filters
from datatorag.domain.models import (
    DocumentFacts,
    DocumentRecord,
    DocumentStatus,
    IndexedChunk,
    SearchHit,
    utcnow,
)
from datatorag.domain.vectors import FloatArray, chunk_vectors, unit_vector
from datatorag.ports import Filters


class SqliteSearchIndex:
    """``SearchIndex`` over SQLite files under ``root`` (one per tenant)."""

    def __init__(
        self,
        root: Path,
        *,
        tombstone_window: int = 1000,
        snapshot_memory_bytes: int = DEFAULT_MEMORY_BYTES,
        ann: AnnConfig | None = None,
    ) -> None:
        """``snapshot_memory_bytes`` bounds the tenants' snapshots this process keeps in memory
        (the least recently searched are dropped past it; see ``snapshot_cache.py``); ``ann``
        says which tenants get an approximate index (by default those of 20k chunks or more)."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tombstone_window = tombstone_window  # generations a lagging reader can catch up on
        self._pool = ConnectionPool(self.root)
        self._snapshots = SnapshotCache(snapshot_memory_bytes)
        # Its ``answered`` counts graph answers; a graph built in the background grows its
        # snapshot, so the budget is checked again then.
        self.approximate = Approximate(ann or AnnConfig(), self.root, self._snapshots.trim)

    def snapshot_stats(self) -> CacheStats:
        """Tenants in memory, their estimated bytes, loads and evictions so far."""
        return self._snapshots.stats()

    # -- documents ---------------------------------------------------------------------------

    def upsert_document(self, doc: DocumentRecord) -> None:
        row = document_row(doc)
        placeholders = ", ".join("?" * len(row))
        with self._pool.writing(doc.tenant) as conn, write(conn):
            conn.execute(
                f"INSERT OR REPLACE INTO documents ({DOCUMENT_COLUMNS}) VALUES ({placeholders})",  # noqa: S608
                row,
            )

    def get_document(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        with self._pool.reading(tenant) as conn:
            if conn is None:
                return None
            row = conn.execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE doc_id = ?",  # noqa: S608
                (doc_id,),
            ).fetchone()
        return document(tenant, row) if row else None

    def list_documents(
        self,
        tenant: str,
        *,
        source_id: str | None = None,
        status: DocumentStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[DocumentRecord]:
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        where, params = ["1"], []
        if source_id is not None:
            where.append("source_id = ?")
            params.append(source_id)
        if status is not None:
            where.append("status = ?")
            params.append(DocumentStatus(status).value)
        with self._pool.reading(tenant) as conn:
            if conn is None:
                return []
            rows = conn.execute(
                f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE {' AND '.join(where)} "  # noqa: S608
                "ORDER BY source_uri, doc_id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [document(tenant, row) for row in rows]

    def set_status(
        self,
        tenant: str,
        doc_id: str,
        status: DocumentStatus,
        *,
        version: str | None = None,
        reason: str | None = None,
    ) -> bool:
        status = DocumentStatus(status)
        with self._pool.reading(tenant) as conn:
            if conn is None:
                return False
            with write(conn):
                return self._set_status(conn, doc_id, status, version, reason)

    def _set_status(
        self,
        conn: sqlite3.Connection,
        doc_id: str,
        status: DocumentStatus,
        version: str | None,
        reason: str | None,
    ) -> bool:
        current = version_and_status(conn, doc_id)
        if current is None:
            return False
        if version is not None and (
            current[0] != version
            or (current[1] == DocumentStatus.DELETED and status != DocumentStatus.DELETED)
        ):
            return False  # a newer version was announced, or the document is gone
        if status == DocumentStatus.DELETED:
            self._mark_deleted(conn, doc_id, reason)  # deleted documents keep no chunks
        else:
            conn.execute(
                "UPDATE documents SET status = ?, reason = ?, updated_at = ? WHERE doc_id = ?",
                (status.value, reason, utcnow().isoformat(), doc_id),
            )
        return True

    def delete_document(self, tenant: str, doc_id: str) -> None:
        with self._pool.reading(tenant) as conn:
            if conn is None:
                return
            with write(conn):
                current = version_and_status(conn, doc_id)
                if current is not None and current[1] != DocumentStatus.DELETED:
                    self._mark_deleted(conn, doc_id, None)

    def _mark_deleted(self, conn: sqlite3.Connection, doc_id: str, reason: str | None) -> None:
        drop_chunks(conn, doc_id, self.tombstone_window)
        conn.execute(
            "UPDATE documents SET status = ?, reason = ?, chunk_count = 0, updated_at = ? "
            "WHERE doc_id = ?",
            (DocumentStatus.DELETED.value, reason, utcnow().isoformat(), doc_id),
        )

    # -- chunks ------------------------------------------------------------------------------

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
        facts = facts or DocumentFacts()
        vectors = chunk_vectors(doc_id, chunks)
        # Tokenised before taking the write lock; the title is known only inside.
        bodies = [(bm25.column_counts(c.heading), bm25.column_counts(c.text)) for c in chunks]
        with self._pool.writing(tenant) as conn, write(conn):
            doc = conn.execute(
                "SELECT version, status, title, source_id, media_type, metadata FROM documents "
                "WHERE doc_id = ?",
                (doc_id,),
            ).fetchone()
            if doc is None or doc[0] != version or doc[1] == DocumentStatus.DELETED:
                return False
            if space is not None:
                spaces.claim_space(conn, tenant, space)
            check_dimension(conn, vectors.shape[1] if len(chunks) else 0)
            title = facts.title or doc[2]
            metadata = json.dumps({**facts.metadata, **json.loads(doc[5])})
            drop_chunks(conn, doc_id, self.tombstone_window)
            title_counts = bm25.column_counts(title)
            terms = chunk_terms(conn, [(title_counts, *body) for body in bodies])
            for chunk, vector, counted in zip(chunks, vectors, terms, strict=True):
                insert_chunk(conn, chunk, vector, title, (doc[3], doc[4], metadata), counted)
            conn.execute(
                "UPDATE documents SET status = ?, reason = NULL, chunk_count = ?, title = ?, "
                "page_count = coalesce(?, page_count), metadata = ?, updated_at = ? "
                "WHERE doc_id = ?",
                (
                    DocumentStatus.INDEXED.value,
                    len(chunks),
                    title,
                    facts.page_count,
                    metadata,
                    utcnow().isoformat(),
                    doc_id,
                ),
            )
        return True

    # -- embedding spaces (domain.spaces) ----------------------------------------------------

    def vector_space(self, tenant: str) -> str | None:
        with self._pool.reading(tenant) as conn:
            return None if conn is None else spaces.recorded_space(conn)

    def stage_vectors(
        self, tenant: str, space: str, vectors: Mapping[str, Sequence[float]]
    ) -> None:
        with self._pool.writing(tenant) as conn, write(conn):
            spaces.stage(conn, space, vectors)

    def swap_space(self, tenant: str, space: str) -> list[str]:
        with self._pool.writing(tenant) as conn, write(conn):
            return spaces.swap(conn, space)

    # -- search ------------------------------------------------------------------------------

    def keyword_search(
        self, tenant: str, query: str, top_k: int, filters: Filters | None = None
    ) -> list[SearchHit]:
        where = parse_filters(filters)
        terms = bm25.query_terms(query)
        if not terms or _check_top_k(top_k) == 0:
            return []
        with self._pool.reading(tenant) as conn:
            if conn is None:
                return []
            with self._read_snapshot(tenant, conn) as snapshot:
                if snapshot.size == snapshot.dead:
                    return []
                known = known_terms(conn, terms)
                term_ids = [known.get(t) for t in terms]
                rowids, scores = keyword_top_k(snapshot, term_ids, top_k, where)
                return fetch_hits(conn, rowids, scores)

    def vector_search(
        self,
        tenant: str,
        vector: Sequence[float],
        top_k: int,
        filters: Filters | None = None,
        *,
        space: str | None = None,
    ) -> list[SearchHit]:
        where = parse_filters(filters)
        query = unit_vector(np.asarray(vector, dtype=np.float32), "query vector")
        if _check_top_k(top_k) == 0:
            return []
        with self._pool.reading(tenant) as conn:
            if conn is None:
                return []
            return self._vector_search(tenant, conn, query, top_k, where, space)

    def _vector_search(
        self,
        tenant: str,
        conn: sqlite3.Connection,
        query: FloatArray,
        top_k: int,
        where: Filter,
        space: str | None,
    ) -> list[SearchHit]:
        with self._read_snapshot(tenant, conn) as snapshot:
            spaces.check_query_space(conn, tenant, space)  # in the snapshot's transaction
            if snapshot.size == 0:
                return []
            if query.shape[0] != snapshot.matrix.shape[1]:
                raise ValueError(
                    f"query vector has {query.shape[0]} dimensions; "
                    f"the index holds {snapshot.matrix.shape[1]}"
                )
            found = self.approximate.top_k(tenant, snapshot, query, top_k, snapshot.allowed(where))
            rowids, scores = found or vector_top_k(snapshot, query, top_k, where)
            return fetch_hits(conn, rowids, scores)

    @contextmanager
    def _read_snapshot(self, tenant: str, conn: sqlite3.Connection) -> Iterator[Snapshot]:
        """A read transaction and the vectors of exactly the generation it sees."""
        while True:
            conn.execute("BEGIN")
            try:
                epoch, generation = meta(conn, "epoch"), meta(conn, "generation")
                snapshot = self._snapshots.latest(tenant, conn, epoch, generation)
                if snapshot is not None:
                    yield snapshot
                    return
            finally:
                conn.execute("COMMIT")
            # Another thread loaded a generation newer than our transaction sees: begin again.

    def close(self) -> None:
        self.approximate.close()
        self._pool.close()
        self._snapshots.clear()


def _check_top_k(top_k: int) -> int:
    if top_k < 0:
        raise ValueError("top_k must not be negative")
    return top_k
