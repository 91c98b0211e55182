"""Registered sources, what a sync of one did, and the rules for their names.

A source's URI may hold credentials (``sftp://user:password@host/...``,
``bamboohr://API_KEY@acme``). The registry record holds only ``display_uri`` (credentials
stripped); the URI as given is a secret (``SecretStore``), read only by the connector.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from datatorag.domain.models import utcnow
from datatorag.domain.tenants import TENANT_RULE, is_tenant_name
from datatorag.domain.uris import redact_uri

SOURCE_ID = re.compile(r"^src_[0-9a-f]{16}$")
KEPT_SYNCS = 10  # sync reports kept per source, newest first


def registry_id(tenant: str, display_uri: str) -> str:
    """Stable: registering the same place again (new credentials, say) replaces the source."""
    return "src_" + hashlib.sha256(f"{tenant}\n{display_uri}".encode()).hexdigest()[:16]


def secret_name(tenant: str, source_id: str) -> str:
    """Where the source's URI, credentials included, is kept in the ``SecretStore``."""
    return f"sources/{tenant}/{source_id}"


def webhook_secret_name(source_id: str) -> str:
    """Where a source's webhook signing key (and its tenant) is kept in the ``SecretStore``."""
    return f"webhooks/{source_id}"


def check_source_uri(uri: str) -> str:
    """``uri``'s scheme, lower case. Raises ``ValueError`` for what is no URI at all."""
    scheme, sep, rest = uri.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) or not rest.strip():
        raise ValueError("a source is a URI such as sftp://user@host/folder or bamboohr://KEY@acme")
    if redact_uri(uri) == "<unparsable URI>":
        raise ValueError(f"invalid source URI {redact_uri(uri)}")
    return scheme.lower()


class RegisteredSource(BaseModel):
    """One tenant's source as the registry keeps it: no credentials."""

    id: str
    tenant: str
    kind: str  # the URI's scheme: file, ftp, sftp, bamboohr, ...
    display_uri: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    # The ``source_id`` its documents carry, as the connector names the source; known once it
    # has been opened (by ``datatorag ingest``, or the connector's first sync).
    documents_source_id: str | None = None

    @field_validator("tenant")
    @classmethod
    def _valid_tenant(cls, tenant: str) -> str:
        if not is_tenant_name(tenant):
            raise ValueError(TENANT_RULE)
        return tenant


class SyncFailure(BaseModel):
    uri: str  # the file or folder, without credentials
    reason: str


SyncStatus = Literal["succeeded", "partial", "failed"]


class SyncRun(BaseModel):
    """One sync of one source, as a managed knowledge base reports an ingestion job."""

    trigger: Literal["schedule", "request"]
    started_at: datetime
    finished_at: datetime
    duration_s: float
    status: SyncStatus  # partial: some files or folders could not be read
    scanned: int = 0
    new: int = 0
    modified: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: list[SyncFailure] = Field(default_factory=list)
    error: str | None = None  # why the whole sync failed (the source could not be opened...)
    employees: int | None = None  # workers read into the directory (HR systems only)


class SyncHistory(BaseModel):
    """What the connector writes after each sync of a source (the only writer)."""

    runs: list[SyncRun] = Field(default_factory=list)  # newest first, at most KEPT_SYNCS
    next_sync_at: datetime | None = None


class SourceView(RegisteredSource):
    """A source as the API and the CLI show it."""

    syncs: list[SyncRun] = Field(default_factory=list)
    next_sync_at: datetime | None = None
    sync_requested_at: datetime | None = None
