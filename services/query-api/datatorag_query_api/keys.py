"""API keys: each belongs to one tenant and is stored only as a peppered HMAC-SHA256 hash.

A key reads ``dtr_<key id>_<secret>``; the id finds the row, the hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from datatorag.models import utcnow

_KEY = re.compile(r"^dtr_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})$")
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    tenant: str


class ApiKeyStore:
    def __init__(self, db_path: Path, pepper: str) -> None:
        self.db_path = db_path
        self._pepper = pepper.encode()
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY,"
                " tenant TEXT NOT NULL, key_hash TEXT NOT NULL, created_at TEXT NOT NULL,"
                " revoked_at TEXT)"
            )

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def _hash(self, key: str) -> str:
        return hmac.new(self._pepper, key.encode(), hashlib.sha256).hexdigest()

    def create(self, tenant: str) -> str:
        """A new key for ``tenant``; the only time the plain key exists."""
        if not TENANT_NAME.match(tenant):
            raise ValueError("tenant names are 1-63 lower-case letters, digits, '-' or '_'")
        key_id = secrets.token_hex(6)
        key = f"dtr_{key_id}_{secrets.token_urlsafe(32)}"
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, NULL)",
                (key_id, tenant, self._hash(key), utcnow().isoformat()),
            )
        return key

    def revoke(self, tenant: str, key_or_id: str) -> bool:
        match = _KEY.match(key_or_id)
        key_id = match.group(1) if match else key_or_id
        with closing(self._connect()) as db, db:
            cur = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND tenant = ?"
                " AND revoked_at IS NULL",
                (utcnow().isoformat(), key_id, tenant),
            )
            return cur.rowcount == 1

    def authenticate(self, key: str) -> KeyInfo | None:
        match = _KEY.match(key)
        if not match:
            return None
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT tenant, key_hash FROM api_keys WHERE key_id = ? AND revoked_at IS NULL",
                (match.group(1),),
            ).fetchone()
        expected = row[1] if row else self._hash("no such key")  # same work either way
        if row and hmac.compare_digest(expected, self._hash(key)):
            return KeyInfo(match.group(1), row[0])
        return None
