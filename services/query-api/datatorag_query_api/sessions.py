"""Admin sessions of the portal: an admin key logs in once, then a cookie stands for it.

The cookie holds a random token; the blob store holds only its SHA-256 (``system/portal-sessions``)
with the tenant, the key id, a CSRF token and the expiry, so every API process sees the same
sessions. Each request checks the key again: revoking the key ends its sessions (within the key
cache's 5 s in other processes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from datatorag.domain.blob_keys import PORTAL_SESSIONS_PREFIX
from datatorag.domain.errors import BlobNotFound
from datatorag.domain.models import utcnow
from datatorag.ports import BlobStore
from datatorag_query_api.keys import ApiKeyStore, KeyInfo

COOKIE = "dtr_session"
LIFETIME = timedelta(hours=8)


@dataclass(frozen=True)
class Session:
    key: KeyInfo
    csrf: str
    expires_at: datetime

    def csrf_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


class PortalSessions:
    def __init__(self, blobs: BlobStore, keys: ApiKeyStore) -> None:
        self.blobs = blobs
        self.keys = keys

    def start(self, key: KeyInfo) -> str:
        """A new session for an authenticated key; returns the cookie's token."""
        token = secrets.token_urlsafe(32)
        record = {
            "key_id": key.key_id,
            "tenant": key.tenant,
            "csrf": secrets.token_urlsafe(24),
            "expires_at": (utcnow() + LIFETIME).isoformat(),
        }
        self.blobs.put(_blob_key(token), json.dumps(record).encode())
        return token

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie token; None when unknown, expired or its key revoked."""
        if not token or len(token) > 100:
            return None
        try:
            record = json.loads(self.blobs.get(_blob_key(token)))
        except BlobNotFound:
            return None
        expires_at = datetime.fromisoformat(record["expires_at"])
        key = self.keys.active(record["key_id"])
        if expires_at <= utcnow() or key is None or key.tenant != record["tenant"]:
            self.end(token)
            return None
        return Session(key, record["csrf"], expires_at)

    def end(self, token: str) -> None:
        self.blobs.delete(_blob_key(token))


def _blob_key(token: str) -> str:
    return PORTAL_SESSIONS_PREFIX + hashlib.sha256(token.encode()).hexdigest() + ".json"
