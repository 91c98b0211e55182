"""Which embedding space a tenant's file holds, and moving it to another (``domain.spaces``).

Each function runs in the caller's transaction. A swap replaces every chunk's vector and gives
the file a new ``epoch``, so every process's snapshot reloads whole at its next search: the
vectors change under unchanged chunk ids, which the incremental catch-up would not notice.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Mapping, Sequence

import numpy as np

from datatorag.domain.errors import VectorSpaceMismatch
from datatorag.domain.spaces import check_space, space_dimension
from datatorag.domain.vectors import unit_vector


def recorded_space(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT name FROM space").fetchone()
    return str(row[0]) if row else None


def claim_space(conn: sqlite3.Connection, tenant: str, space: str) -> None:
    """Record ``space`` as the tenant's, or raise ``VectorSpaceMismatch`` when its vectors are
    in another. A tenant with no chunks left takes the new space; a file written before spaces
    were recorded is taken to hold this one (the only model such a deployment ran)."""
    known = recorded_space(conn)
    if known == space:
        return
    if known is not None:
        if conn.execute("SELECT 1 FROM chunks LIMIT 1").fetchone():
            raise VectorSpaceMismatch(tenant, known, space)
        conn.execute("UPDATE meta SET value = 0 WHERE key = 'dimension'")  # the space's, next
    _record(conn, space)


def check_query_space(conn: sqlite3.Connection, tenant: str, space: str | None) -> None:
    known = recorded_space(conn)
    if space is not None and known is not None and known != space:
        raise VectorSpaceMismatch(tenant, known, space)


def stage(conn: sqlite3.Connection, space: str, vectors: Mapping[str, Sequence[float]]) -> None:
    check_space(space)
    conn.execute("DELETE FROM staged_vectors WHERE space != ?", (space,))
    rows = []
    dimension = space_dimension(space)
    for chunk_id, values in vectors.items():
        vector = unit_vector(np.asarray(values, dtype=np.float32), f"vector of {chunk_id!r}")
        if vector.shape[0] != dimension:
            raise ValueError(f"{space} vectors have {dimension} dimensions, not {vector.shape[0]}")
        rows.append((chunk_id, space, vector.tobytes()))
    conn.executemany("INSERT OR REPLACE INTO staged_vectors VALUES (?, ?, ?)", rows)


def swap(conn: sqlite3.Connection, space: str) -> list[str]:
    """Make the vectors staged in ``space`` the searched ones; or, when a chunk has none, the
    ids of the chunks that lack one (nothing changes)."""
    missing = conn.execute(
        "SELECT c.chunk_id FROM chunks c LEFT JOIN staged_vectors s "
        "ON s.chunk_id = c.chunk_id AND s.space = ? WHERE s.chunk_id IS NULL ORDER BY c.chunk_id",
        (check_space(space),),
    ).fetchall()
    if missing:
        return [row[0] for row in missing]
    conn.execute("DELETE FROM chunk_vectors")
    conn.execute(
        "INSERT INTO chunk_vectors (id, vector) SELECT c.id, s.vector FROM chunks c "
        "JOIN staged_vectors s ON s.chunk_id = c.chunk_id AND s.space = ?",
        (space,),
    )
    conn.execute("DELETE FROM staged_vectors")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'dimension'", (space_dimension(space),))
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (secrets.randbits(62),))
    _record(conn, space)
    return []


def _record(conn: sqlite3.Connection, space: str) -> None:
    conn.execute("INSERT OR REPLACE INTO space (only, name) VALUES (1, ?)", (check_space(space),))
