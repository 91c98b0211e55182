"""Queue on SQLite with SQS semantics, safe across processes sharing one database file.

Visibility timeouts, receive counts, receipts that go stale on redelivery and a dead-letter
queue named ``<name>-dlq`` in the same file. Several named queues share one file. WAL lets
readers run beside the single writer; every receive claims its messages inside
``BEGIN IMMEDIATE`` so two processes never hold the same message at once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from datatorag.domain.messages import DLQ_SUFFIX, REDRIVE_REASON
from datatorag.ports import ReceivedMessage

_POLL_INTERVAL_S = 0.05  # long polling: how often an empty queue is looked at again
_BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another process's transaction

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        visible_at REAL NOT NULL,
        receive_count INTEGER NOT NULL DEFAULT 0,
        receipt TEXT UNIQUE,
        reason TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at)",
)


class SqliteQueue:
    """A named queue in a SQLite file; see the module docstring for the semantics."""

    def __init__(
        self, db_path: Path, name: str, *, max_receives: int, visibility_timeout: float
    ) -> None:
        if max_receives < 1:
            raise ValueError("max_receives must be at least 1")
        if visibility_timeout < 0:
            raise ValueError("visibility_timeout must not be negative")
        self.name = name
        self.dlq_name = name + DLQ_SUFFIX
        self.max_receives = max_receives
        self.visibility_timeout = visibility_timeout
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, shared by this object's threads (extend_visibility heartbeats).
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.db_path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._write() as db:
            for statement in _SCHEMA:
                db.execute(statement)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the database's write lock up front."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def send(self, body: str) -> str:
        return self.send_batch([body])[0]

    def send_batch(self, bodies: Sequence[str]) -> list[str]:
        ids = [str(uuid.uuid4()) for _ in bodies]
        now = time.time()
        with self._write() as db:
            db.executemany(
                "INSERT INTO messages (queue, id, body, visible_at) VALUES (?, ?, ?, ?)",
                [(self.name, mid, body, now) for mid, body in zip(ids, bodies, strict=True)],
            )
        return ids

    def receive(
        self,
        max_messages: int = 1,
        wait_seconds: float = 0.0,
        visibility_timeout: float | None = None,
    ) -> list[ReceivedMessage]:
        timeout = self.visibility_timeout if visibility_timeout is None else visibility_timeout
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        while True:
            messages = self._claim(max_messages, timeout)
            remaining = deadline - time.monotonic()
            if messages or remaining <= 0:
                return messages
            time.sleep(min(_POLL_INTERVAL_S, remaining))

    def _claim(self, max_messages: int, timeout: float) -> list[ReceivedMessage]:
        now = time.time()
        claimed: list[ReceivedMessage] = []
        with self._write() as db:
            # Redrive first: a message delivered max_receives times that is visible again.
            db.execute(
                "UPDATE messages SET queue = ?, receipt = NULL, reason = ?"
                " WHERE queue = ? AND visible_at <= ? AND receive_count >= ?",
                (self.dlq_name, REDRIVE_REASON, self.name, now, self.max_receives),
            )
            rows = db.execute(
                "SELECT seq, id, body, receive_count FROM messages"
                " WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, seq LIMIT ?",
                (self.name, now, max(max_messages, 0)),
            ).fetchall()
            for seq, mid, body, count in rows:
                receipt = uuid.uuid4().hex
                db.execute(
                    "UPDATE messages SET receipt = ?, receive_count = ?, visible_at = ?"
                    " WHERE seq = ?",
                    (receipt, count + 1, now + timeout, seq),
                )
                claimed.append(ReceivedMessage(mid, body, receipt, count + 1))
        return claimed

    def delete(self, receipt: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM messages WHERE queue = ? AND receipt = ?", (self.name, receipt))

    def change_visibility(self, receipt: str, timeout_seconds: float) -> None:
        """Ignored when the receipt is stale (the message was received again since)."""
        with self._write() as db:
            db.execute(
                "UPDATE messages SET visible_at = ? WHERE queue = ? AND receipt = ?",
                (time.time() + max(timeout_seconds, 0.0), self.name, receipt),
            )

    def dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        """Put a copy on the DLQ with ``reason``, then delete the original if the receipt holds.

        Like SQS (send to the DLQ, then delete): with a stale receipt the original stays queued.
        """
        with self._write() as db:
            db.execute(
                "DELETE FROM messages WHERE queue = ? AND receipt = ?", (self.name, message.receipt)
            )
            db.execute(
                "INSERT INTO messages (queue, id, body, visible_at, receive_count, reason)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self.dlq_name,
                    message.message_id,
                    message.body,
                    time.time(),
                    message.receive_count,
                    reason,
                ),
            )

    def dead_letters(self) -> list[tuple[str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body, reason FROM messages WHERE queue = ? ORDER BY seq", (self.dlq_name,)
            ).fetchall()
        return [(body, reason or "") for body, reason in rows]

    def depth(self) -> int:
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM messages WHERE queue = ?", (self.name,)
            ).fetchone()
        return int(count)
