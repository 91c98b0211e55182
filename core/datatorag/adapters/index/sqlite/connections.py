"""Pooled connections to the tenants' index files, which run in WAL mode: every read
transaction sees a consistent snapshot while one process writes and others read."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from datatorag.adapters.index.sqlite.schema import SCHEMA_VERSION, create_schema
from datatorag.adapters.index.sqlite.store import write
from datatorag.domain.tenants import validate_tenant

BUSY_TIMEOUT_S = 30.0
MAX_IDLE_CONNECTIONS = 8  # per tenant; more concurrent callers open and close their own


class ConnectionPool:
    """Idle connections by tenant, to ``<root>/<tenant>.db``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._idle: dict[str, list[sqlite3.Connection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def reading(self, tenant: str) -> Iterator[sqlite3.Connection | None]:
        """A pooled connection to the tenant's file; None while the file does not exist."""
        with self._connection(tenant, create=False) as conn:
            yield conn

    @contextmanager
    def writing(self, tenant: str) -> Iterator[sqlite3.Connection]:
        with self._connection(tenant, create=True) as conn:
            if conn is None:  # pragma: no cover - create=True always opens the file
                raise RuntimeError(f"cannot open the index of tenant {tenant!r}")
            yield conn

    @contextmanager
    def _connection(self, tenant: str, *, create: bool) -> Iterator[sqlite3.Connection | None]:
        # A pool rather than one connection per thread: thread pools retire idle threads, and
        # each would otherwise leave an open connection behind.
        validate_tenant(tenant)
        with self._lock:
            if self._closed:
                raise RuntimeError("the search index is closed")
            idle = self._idle.setdefault(tenant, [])
            conn = idle.pop() if idle else None
        if conn is None:
            conn = self._open(tenant, create=create)
        try:
            yield conn
        finally:
            if conn is not None:
                self._release(tenant, conn)

    def _release(self, tenant: str, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:  # only after an error inside a transaction helper
            conn.rollback()
        with self._lock:
            idle = self._idle.get(tenant)
            if not self._closed and idle is not None and len(idle) < MAX_IDLE_CONNECTIONS:
                idle.append(conn)
                return
        conn.close()

    def _open(self, tenant: str, *, create: bool) -> sqlite3.Connection | None:
        path = self.root / f"{tenant}.db"
        if not create and not path.exists():
            return None  # reads of an unknown tenant create nothing
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous = NORMAL")  # durable at each checkpoint; WAL stays safe
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                with write(conn):
                    create_schema(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for conn in (c for conns in idle.values() for c in conns):
            with suppress(sqlite3.Error):
                conn.close()
