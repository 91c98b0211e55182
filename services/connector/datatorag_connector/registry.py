"""The sources each tenant has registered; the connector service syncs them on an interval.

They live in the shared blob store (a local folder on the embedded default, S3 on AWS) so that
every connector task sees the same list and it survives a redeploy: one JSON object per source,
``system/sources/<tenant>/<sha256 of the URI>.json``. Registering the same URI again replaces it.

A URI may hold credentials (``sftp://user:password@host/...``): it is stored as given, so keep
the bucket private, and never print it: logs and listings show ``display_uri``, which has them
stripped. On AWS, prefer keeping credentials out of the URI altogether: the sources read
``DATATORAG_SFTP_PASSWORD``, ``DATATORAG_SFTP_KEY_FILE`` and ``DATATORAG_FTP_PASSWORD`` from the
environment, which ECS fills from Secrets Manager.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from datatorag.domain.blob_keys import SOURCES_PREFIX
from datatorag.domain.errors import BlobNotFound
from datatorag.domain.tenants import TENANT_RULE, is_tenant_name
from datatorag.log import get_logger
from datatorag.ports import BlobStore
from datatorag_connector.sources.base import redact_uri

log = get_logger(__name__)


class RegisteredSource(BaseModel):
    tenant: str
    # As given, credentials included: kept out of repr/str; show display_uri instead.
    uri: str = Field(repr=False)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tenant")
    @classmethod
    def _valid_tenant(cls, tenant: str) -> str:
        if not is_tenant_name(tenant):
            raise ValueError(TENANT_RULE)
        return tenant

    @property
    def display_uri(self) -> str:
        """The URI without user, password or secret-looking query values."""
        return redact_uri(self.uri)

    @property
    def blob_key(self) -> str:
        digest = hashlib.sha256(self.uri.encode()).hexdigest()
        return f"{SOURCES_PREFIX}{self.tenant}/{digest}.json"


class SourceRegistry:
    """Registered sources kept in ``blobs`` under ``system/sources/``."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def all(self) -> list[RegisteredSource]:
        """Every tenant's sources, by tenant; a damaged record is skipped with a warning."""
        sources = []
        for key in list(self.blobs.list(SOURCES_PREFIX)):
            try:
                sources.append(RegisteredSource.model_validate_json(self.blobs.get(key)))
            except BlobNotFound:  # removed since it was listed
                continue
            except ValidationError:
                log.warning("source.unreadable_record", blob_key=key)  # no URI: it may hold secrets
        return sources

    def add(self, source: RegisteredSource) -> None:
        """Register ``source``, replacing the tenant's earlier registration of the same URI."""
        self.blobs.put(source.blob_key, source.model_dump_json(indent=1).encode())
