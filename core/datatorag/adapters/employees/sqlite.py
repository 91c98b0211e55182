"""EmployeeDirectory in one SQLite file (``<data_dir>/employees.db``), one row per worker."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from datatorag.domain.employees import Employee
from datatorag.domain.tenants import validate_tenant

# Written out (not built from _FIELDS) so the statements are constants; a test checks they agree.
COLUMNS = ("id", "email", "country", "region", "employment_type", "department", "location")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS employees (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    email TEXT,
    country TEXT,
    region TEXT,
    employment_type TEXT,
    department TEXT,
    location TEXT,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID
"""
_UPSERT = (
    "INSERT OR REPLACE INTO employees"
    " (tenant, id, email, country, region, employment_type, department, location)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT = (
    "SELECT id, email, country, region, employment_type, department, location"
    " FROM employees WHERE tenant = ? AND id = ?"
)


class SqliteEmployeeDirectory:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.execute(_SCHEMA)
        self._lock = threading.Lock()

    def get(self, tenant: str, employee_id: str) -> Employee | None:
        with self._lock:
            row = self._conn.execute(_SELECT, (validate_tenant(tenant), employee_id)).fetchone()
        return Employee(**dict(zip(COLUMNS, row, strict=True))) if row else None

    def put(self, tenant: str, employee: Employee) -> None:
        with self._lock:
            self._conn.execute(_UPSERT, _row(validate_tenant(tenant), employee))

    def remove(self, tenant: str, employee_id: str) -> None:
        with self._lock:
            self._conn.execute(
                "DELETE FROM employees WHERE tenant = ? AND id = ?",
                (validate_tenant(tenant), employee_id),
            )

    def replace_all(self, tenant: str, employees: Iterable[Employee]) -> int:
        validate_tenant(tenant)
        rows = {e.id: _row(tenant, e) for e in employees}  # read the feed before touching rows
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("DELETE FROM employees WHERE tenant = ?", (tenant,))
                self._conn.executemany(_UPSERT, rows.values())
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return len(rows)

    def close(self) -> None:
        self._conn.close()


def _row(tenant: str, employee: Employee) -> tuple[str | None, ...]:
    return (tenant, *(getattr(employee, name) for name in COLUMNS))
