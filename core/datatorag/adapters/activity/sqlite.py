"""ActivityLog in one SQLite file of the data directory (the embedded default).

Each entry is a JSON document with its tenant and time as indexed columns; every API process
opens the same file (WAL), so the log is shared like the index.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from datatorag.domain.activity import (
    AdminAction,
    AnswerRecord,
    Entry,
    Feedback,
    admin_action_from_json,
    answer_from_json,
    entry_to_json,
    feedback_from_json,
)

_T = TypeVar("_T")
_TABLES = ("answers", "feedback", "admin_actions")
_SCHEMA = (
    "".join(
        f"""
CREATE TABLE IF NOT EXISTS {table} (
    tenant TEXT NOT NULL, at TEXT NOT NULL, answer_id TEXT, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {table}_by_time ON {table} (tenant, at);
"""
        for table in _TABLES
    )
    + "CREATE UNIQUE INDEX IF NOT EXISTS answers_by_id ON answers (tenant, answer_id);"
)


class SqliteActivityLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def _insert(self, table: str, entry: Entry, answer_id: str | None = None) -> None:
        data = json.dumps(entry_to_json(entry))
        with self._connect() as conn:
            conn.execute(
                f"INSERT INTO {table} (tenant, at, answer_id, data) VALUES (?, ?, ?, ?)",  # noqa: S608
                (entry.tenant, _key(entry.at), answer_id, data),
            )

    def record_answer(self, entry: AnswerRecord) -> None:
        self._insert("answers", entry, entry.answer_id)

    def record_feedback(self, entry: Feedback) -> bool:
        with self._connect() as conn:
            found = conn.execute(
                "SELECT 1 FROM answers WHERE tenant = ? AND answer_id = ?",
                (entry.tenant, entry.answer_id),
            ).fetchone()
        if found is None:
            return False
        self._insert("feedback", entry, entry.answer_id)
        return True

    def record_admin(self, entry: AdminAction) -> None:
        self._insert("admin_actions", entry)

    def _read(
        self,
        table: str,
        tenant: str,
        since: datetime,
        until: datetime,
        decode: Callable[[dict[str, Any]], _T],
    ) -> list[_T]:
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT data FROM {table} WHERE tenant = ? AND at >= ? AND at < ? "  # noqa: S608
                "ORDER BY at, rowid",
                (tenant, _key(since), _key(until)),
            ).fetchall()
        return [decode(json.loads(data)) for (data,) in rows]

    def answers(self, tenant: str, since: datetime, until: datetime) -> list[AnswerRecord]:
        return self._read("answers", tenant, since, until, answer_from_json)

    def feedback(self, tenant: str, since: datetime, until: datetime) -> list[Feedback]:
        return self._read("feedback", tenant, since, until, feedback_from_json)

    def admin_actions(self, tenant: str, since: datetime, until: datetime) -> list[AdminAction]:
        return self._read("admin_actions", tenant, since, until, admin_action_from_json)

    def purge(self, tenant: str, before: datetime) -> int:
        deleted = 0
        with self._connect() as conn:
            for table in _TABLES:
                cursor = conn.execute(
                    f"DELETE FROM {table} WHERE tenant = ? AND at < ?",  # noqa: S608
                    (tenant, _key(before)),
                )
                deleted += cursor.rowcount
        return deleted


def _key(at: datetime) -> str:
    """Times as sortable UTC text (every entry's ``at`` is timezone-aware)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
