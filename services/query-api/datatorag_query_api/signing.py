"""Signing secrets and employee tokens: how an HR-tech vendor embeds the ask page.

An admin creates a signing secret for the tenant (shown once). The vendor's backend mints a
short-lived JWT (HS256, PyJWT or any JOSE library) with it, carrying the employee's id and
attributes::

    header  {"alg": "HS256", "kid": "<secret id>"}
    claims  {"sub": "<employee id>", "tenant": "<tenant>", "iat": ..., "exp": ... (<= 1 hour),
             "employee": {"country": "GB", "region": "ENG", "employment_type": "full-time",
                          "department": "...", "location": "..."}}

``/v1/search``, ``/v1/query`` and the ask page accept it as ``Authorization: Bearer <token>``,
for reading only. Secrets live in the shared blob store (``system/signing-secrets/<id>.json``),
encrypted with AES-GCM under a key derived from the API-key pepper, so every API process can
verify tokens and a copy of the store alone reveals nothing.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from datatorag.domain.blob_keys import SIGNING_SECRETS_PREFIX
from datatorag.domain.employees import Employee
from datatorag.domain.errors import BlobNotFound, DatatoRAGError
from datatorag.domain.models import utcnow
from datatorag.domain.tenants import validate_tenant
from datatorag.ports import BlobStore

MAX_TOKEN_LIFETIME_S = 3600  # "short-lived": a leaked link stops working within the hour
CACHE_TTL_S = 5.0  # like API keys: a revocation elsewhere takes effect here within 5 s
_KID = re.compile(r"^[a-z0-9]{12}$")
_ATTRIBUTES = ("country", "region", "employment_type", "department", "location")


class InvalidToken(DatatoRAGError):
    """An employee token that is malformed, expired, tampered with or for another tenant."""


@dataclass(frozen=True)
class SecretInfo:
    kid: str
    tenant: str
    created_at: str
    revoked_at: str | None = None


@dataclass(frozen=True)
class EmployeeClaims:
    tenant: str
    employee: Employee


def derive_key(pepper: str, purpose: str) -> bytes:
    """A 256-bit key for one purpose, derived from the deployment's pepper (HKDF-SHA256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(pepper.encode())


class SigningSecrets:
    def __init__(self, blobs: BlobStore, pepper: str) -> None:
        self.blobs = blobs
        self._aead = AESGCM(derive_key(pepper, "datatorag signing secrets"))
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def create(self, tenant: str) -> tuple[str, str]:
        """A new secret for ``tenant``: ``(kid, secret)``; the only time the secret is shown."""
        validate_tenant(tenant)
        kid, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        nonce = secrets.token_bytes(12)
        sealed = nonce + self._aead.encrypt(nonce, secret.encode(), kid.encode())
        record = {
            "kid": kid,
            "tenant": tenant,
            "created_at": utcnow().isoformat(),
            "revoked_at": None,
            "secret": base64.b64encode(sealed).decode(),
        }
        self.blobs.put(f"{SIGNING_SECRETS_PREFIX}{kid}.json", json.dumps(record).encode())
        return kid, secret

    def list(self, tenant: str) -> list[SecretInfo]:
        infos = []
        for key in self.blobs.list(SIGNING_SECRETS_PREFIX):
            record = self._read(key.removeprefix(SIGNING_SECRETS_PREFIX).removesuffix(".json"))
            if record is not None and record["tenant"] == tenant:
                infos.append(_info(record))
        return sorted(infos, key=lambda i: i.created_at)

    def revoke(self, tenant: str, kid: str) -> bool:
        record = self._read(kid)
        if record is None or record["tenant"] != tenant or record["revoked_at"]:
            return False
        record["revoked_at"] = utcnow().isoformat()
        self.blobs.put(f"{SIGNING_SECRETS_PREFIX}{kid}.json", json.dumps(record).encode())
        with self._lock:
            self._cache.pop(kid, None)
        return True

    def mint(self, tenant: str, kid: str, secret: str, employee: Employee, ttl_s: int) -> str:
        """What a vendor's backend does; used by ``datatorag`` for the demo link and by tests."""
        now = int(time.time())
        attributes = {a: getattr(employee, a) for a in _ATTRIBUTES if getattr(employee, a)}
        claims = {"sub": employee.id, "tenant": tenant, "iat": now, "exp": now + ttl_s}
        claims["employee"] = attributes
        return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})

    def verify(self, token: str) -> EmployeeClaims:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as err:
            raise InvalidToken("the token is not a JWT") from err
        record = self._lookup(kid) if isinstance(kid, str) and _KID.match(kid) else None
        if record is None or record["revoked_at"]:
            raise InvalidToken("the token's signing secret is unknown or revoked")
        try:
            claims = jwt.decode(
                token,
                self._secret(record),
                algorithms=["HS256"],
                options={"require": ["exp", "iat", "sub", "tenant"]},
            )
        except jwt.ExpiredSignatureError as err:
            raise InvalidToken("the token has expired") from err
        except jwt.PyJWTError as err:
            raise InvalidToken("the token's signature or claims are invalid") from err
        if claims["tenant"] != record["tenant"]:
            raise InvalidToken("the token is for another tenant than its signing secret")
        if claims["exp"] - claims["iat"] > MAX_TOKEN_LIFETIME_S:
            raise InvalidToken(f"tokens may live at most {MAX_TOKEN_LIFETIME_S} s")
        return EmployeeClaims(record["tenant"], _employee(claims))

    def _secret(self, record: dict[str, Any]) -> str:
        sealed = base64.b64decode(record["secret"])
        return self._aead.decrypt(sealed[:12], sealed[12:], record["kid"].encode()).decode()

    def _lookup(self, kid: str) -> dict[str, Any] | None:
        with self._lock:
            cached = self._cache.get(kid)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        record = self._read(kid)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[kid] = (time.monotonic() + CACHE_TTL_S, record)
        return record

    def _read(self, kid: str) -> dict[str, Any] | None:
        if not _KID.match(kid):
            return None
        try:
            record: dict[str, Any] = json.loads(
                self.blobs.get(f"{SIGNING_SECRETS_PREFIX}{kid}.json")
            )
        except BlobNotFound:
            return None
        return record


def _info(record: dict[str, Any]) -> SecretInfo:
    return SecretInfo(record["kid"], record["tenant"], record["created_at"], record["revoked_at"])


def _employee(claims: dict[str, Any]) -> Employee:
    given = claims.get("employee") or {}
    if not isinstance(given, dict):
        raise InvalidToken("the token's employee claim must be an object")
    attributes = {a: str(given[a])[:100] for a in _ATTRIBUTES if given.get(a)}
    return Employee(id=str(claims["sub"])[:200], **attributes)
