"""API keys: each belongs to one tenant and is stored only as a peppered HMAC-SHA256 hash.

A key reads ``dtr_<key id>_<secret>``. Keys live in the shared blob store (a local folder on the
embedded default, S3 on AWS) as one small JSON object per key, ``system/api-keys/<key id>.json``,
holding the tenant, the role, the hash, ``created_at`` and ``revoked_at``, never the key. Every
task of the query API therefore sees the same keys, and they survive a redeploy.

Authentication runs on every request, so each process keeps what it read for ``cache_ttl_s``
(5 s by default): a key revoked through another process stops working there within that time;
a revocation made through this store takes effect here at once.

A key's role is ``admin`` (sources, documents, keys, and everything a query key may do) or
``query`` (search and ask only). A record written before roles existed has no role: it is an admin
key, as it could do everything then. Concurrent requests with the
same uncached key wait for one read instead of each reading the store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

from datatorag.domain.blob_keys import API_KEYS_PREFIX
from datatorag.domain.errors import BlobNotFound, InvalidRequest
from datatorag.domain.models import utcnow
from datatorag.domain.tenants import TENANT_RULE, is_tenant_name
from datatorag.log import get_logger
from datatorag.ports import BlobStore

log = get_logger(__name__)

_KEY = re.compile(r"^dtr_([a-z0-9]{12})_([A-Za-z0-9_-]{32,64})$")
_KEY_ID = re.compile(r"^[a-z0-9]{12}$")
DEFAULT_CACHE_TTL_S = 5.0
_CACHE_MAX_ENTRIES = 10_000  # ids looked up, known or not: bounds memory under random ids

Role = Literal["admin", "query"]
ROLES: tuple[Role, ...] = get_args(Role)


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    tenant: str
    role: Role = "admin"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class KeyListing:
    key_id: str
    created_at: str
    revoked_at: str | None
    role: Role = "admin"


@dataclass(frozen=True)
class _Record:
    tenant: str
    key_hash: str
    created_at: str
    revoked_at: str | None = None
    role: Role = "admin"  # records from before roles were admin keys

    def to_json(self, key_id: str) -> bytes:
        return json.dumps(
            {
                "key_id": key_id,
                "tenant": self.tenant,
                "role": self.role,
                "key_hash": self.key_hash,
                "created_at": self.created_at,
                "revoked_at": self.revoked_at,
            },
            indent=1,
        ).encode()


class ApiKeyStore:
    """Create, revoke and check API keys kept in ``blobs`` under ``system/api-keys/``."""

    def __init__(
        self,
        blobs: BlobStore,
        pepper: str,
        *,
        cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.blobs = blobs
        self.cache_ttl_s = cache_ttl_s
        self._pepper = pepper.encode()
        self._clock = clock
        self._unknown_hash = self._hash("no such key")  # compared against for unknown ids
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, _Record | None]] = {}  # key id -> (expiry, record)
        self._reading: dict[str, threading.Lock] = {}  # key id -> lock of the read in progress

    def _hash(self, key: str) -> str:
        return hmac.new(self._pepper, key.encode(), hashlib.sha256).hexdigest()

    def create(self, tenant: str, role: Role = "admin") -> str:
        """A new key for ``tenant``; the only time the plain key exists."""
        if not is_tenant_name(tenant):
            raise InvalidRequest(TENANT_RULE)
        if role not in ROLES:
            raise InvalidRequest(f"unknown role {role!r}: use {' or '.join(ROLES)}")
        key_id = secrets.token_hex(6)
        key = f"dtr_{key_id}_{secrets.token_urlsafe(32)}"
        record = _Record(tenant, self._hash(key), utcnow().isoformat(), role=role)
        self.blobs.put(_blob_key(key_id), record.to_json(key_id))
        self._forget(key_id)
        return key

    def revoke(self, tenant: str, key_or_id: str) -> bool:
        """Revoke one of ``tenant``'s active keys; False if it is not one (another tenant's)."""
        match = _KEY.match(key_or_id)
        key_id = match.group(1) if match else key_or_id
        if not _KEY_ID.match(key_id):
            return False
        record = self._read(key_id)
        if record is None or record.tenant != tenant or record.revoked_at is not None:
            return False
        revoked = _Record(
            record.tenant, record.key_hash, record.created_at, utcnow().isoformat(), record.role
        )
        self.blobs.put(_blob_key(key_id), revoked.to_json(key_id))
        self._forget(key_id)
        return True

    def authenticate(self, key: str) -> KeyInfo | None:
        """The key's tenant, or None; one HMAC and one constant-time compare either way."""
        match = _KEY.match(key)
        if not match:
            return None
        key_id = match.group(1)
        record = self._lookup(key_id)
        active = record is not None and record.revoked_at is None
        expected = record.key_hash if record is not None and active else self._unknown_hash
        if hmac.compare_digest(expected, self._hash(key)) and record is not None and active:
            return KeyInfo(key_id, record.tenant, record.role)
        return None

    def active(self, key_id: str) -> KeyInfo | None:
        """The key behind a portal session, if it is still active (cached like ``authenticate``)."""
        if not _KEY_ID.match(key_id):
            return None
        record = self._lookup(key_id)
        if record is None or record.revoked_at is not None:
            return None
        return KeyInfo(key_id, record.tenant, record.role)

    def list(self, tenant: str) -> list[KeyListing]:
        """The tenant's keys, newest first: ids and dates, never a key or its hash."""
        listing = []
        for blob_key in self.blobs.list(API_KEYS_PREFIX):
            key_id = blob_key.removeprefix(API_KEYS_PREFIX).removesuffix(".json")
            record = self._read(key_id) if _KEY_ID.match(key_id) else None
            if record is not None and record.tenant == tenant:
                listing.append(
                    KeyListing(key_id, record.created_at, record.revoked_at, record.role)
                )
        return sorted(listing, key=lambda k: k.created_at, reverse=True)

    def tenants(self) -> set[str]:
        """Every tenant that has or had a key (revoked ones' uploads are still theirs)."""
        found = set()
        for blob_key in self.blobs.list(API_KEYS_PREFIX):
            key_id = blob_key.removeprefix(API_KEYS_PREFIX).removesuffix(".json")
            record = self._read(key_id) if _KEY_ID.match(key_id) else None
            if record is not None:
                found.add(record.tenant)
        return found

    def _lookup(self, key_id: str) -> _Record | None:
        """The record from the cache, or from the store by one reader per id at a time."""
        cached = self._cached(key_id)
        if cached is not None:
            return cached[1]
        with self._lock:
            reading = self._reading.setdefault(key_id, threading.Lock())
        with reading:
            cached = self._cached(key_id)  # filled by the reader this thread waited for
            if cached is not None:
                return cached[1]
            try:
                record = self._read(key_id)
                self._remember(key_id, record)
            finally:
                with self._lock:
                    self._reading.pop(key_id, None)
            return record

    def _cached(self, key_id: str) -> tuple[float, _Record | None] | None:
        with self._lock:
            entry = self._cache.get(key_id)
        return entry if entry is not None and entry[0] > self._clock() else None

    def _remember(self, key_id: str, record: _Record | None) -> None:
        if self.cache_ttl_s <= 0:
            return
        with self._lock:
            self._cache.pop(key_id, None)
            while len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.pop(next(iter(self._cache)))  # the oldest entry
            self._cache[key_id] = (self._clock() + self.cache_ttl_s, record)

    def _forget(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)

    def _read(self, key_id: str) -> _Record | None:
        try:
            raw = json.loads(self.blobs.get(_blob_key(key_id)))
            role = raw.get("role") or "admin"
            if role not in ROLES:
                raise ValueError(role)
            return _Record(
                tenant=str(raw["tenant"]),
                key_hash=str(raw["key_hash"]),
                created_at=str(raw["created_at"]),
                revoked_at=None if raw.get("revoked_at") is None else str(raw["revoked_at"]),
                role=role,
            )
        except BlobNotFound:
            return None
        except (ValueError, KeyError, TypeError):  # refuse a damaged record, never crash on it
            log.warning("api_key.unreadable_record", key_id=key_id)
            return None


def _blob_key(key_id: str) -> str:
    return f"{API_KEYS_PREFIX}{key_id}.json"
