"""Pooled connections to the tenants' index files, which run in WAL mode: every read
transaction sees a consistent snapshot while one process writes and others read."""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from datatorag.adapters.index.sqlite.schema import SCHEMA_VERSION, create_schema
from datatorag.adapters.index.sqlite.store import write
from datatorag.domain.tenants import validate_tenant

BUSY_TIMEOUT_S = 30.0
MAX_IDLE_CONNECTIONS = 8  # per tenant; more concurrent callers open and close their own
# In all: with many tenants, those searched least recently lose theirs (each holds a file
# descriptor and up to 2 MB of page cache).
MAX_IDLE_TOTAL = 64


class ConnectionPool:
    """Idle connections by tenant, to ``<root>/<tenant>.db``, least recently used first."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._idle: OrderedDict[str, list[sqlite3.Connection]] = OrderedDict()
        self._idle_count = 0
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
            idle = self._idle.get(tenant)
            conn = idle.pop() if idle else None
            if conn is not None:
                self._idle_count -= 1
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
        surplus = [conn]
        with self._lock:
            idle = self._idle.setdefault(tenant, [])
            self._idle.move_to_end(tenant)
            if not self._closed and len(idle) < MAX_IDLE_CONNECTIONS:
                idle.append(surplus.pop())
                self._idle_count += 1
                surplus += self._trim()
        for extra in surplus:
            extra.close()

    def _trim(self) -> list[sqlite3.Connection]:
        """Idle connections past ``MAX_IDLE_TOTAL``, least recently used tenants' first (to be
        closed outside the lock)."""
        surplus = []
        while self._idle_count > MAX_IDLE_TOTAL and self._idle:
            tenant, idle = next(iter(self._idle.items()))
            if idle:
                surplus.append(idle.pop())
                self._idle_count -= 1
            if not idle:
                del self._idle[tenant]
        return surplus

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
            idle, self._idle, self._idle_count = self._idle, OrderedDict(), 0
        for conn in (c for conns in idle.values() for c in conns):
            with suppress(sqlite3.Error):
                conn.close()
