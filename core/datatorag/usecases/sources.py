"""The sources each tenant has registered, shared by the query API, the CLI and the connector.

Everything lives behind ports, so every API and connector process sees the same state:

- ``system/sources/<tenant>/<id>.json`` in the blob store: the record, no credentials;
- the URI as given, credentials included, in the ``SecretStore`` (``sources/<tenant>/<id>``);
- ``system/sync-requests/<tenant>/<id>.json``: a sync asked for (the API writes, the connector
  takes it);
- ``system/sync-history/<tenant>/<id>.json``: the last syncs (the connector alone writes it).

Records written before credentials moved out (``{"tenant", "uri", "metadata"}`` under
``<sha256 of the URI>.json``) are migrated on the first ``all()``: the URI goes to the secret
store and the record is rewritten without it.
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel, ValidationError

from datatorag.domain.blob_keys import HISTORY_PREFIX, REQUESTS_PREFIX, SOURCES_PREFIX
from datatorag.domain.errors import BlobNotFound, InvalidKey, SecretNotFound
from datatorag.domain.models import DocumentStatus, utcnow
from datatorag.domain.sources import (
    KEPT_SYNCS,
    SOURCE_ID,
    RegisteredSource,
    SourceView,
    SyncHistory,
    SyncRun,
    check_source_uri,
    registry_id,
    secret_name,
    webhook_secret_name,
)
from datatorag.domain.tenants import TENANT_RULE, is_tenant_name, validate_tenant
from datatorag.domain.uris import redact_uri
from datatorag.log import get_logger
from datatorag.ports import BlobStore, SearchIndex, SecretStore
from datatorag.usecases.removal import remove_document

log = get_logger(__name__)


class SourceNotFound(LookupError):
    pass


class _LegacyRecord(BaseModel):
    tenant: str
    uri: str
    metadata: dict[str, object] = {}


class _SyncRequest(BaseModel):
    requested_at: datetime


class SourceCatalog:
    def __init__(self, blobs: BlobStore, secrets: SecretStore) -> None:
        self.blobs = blobs
        self.secrets = secrets

    # -- registering -----------------------------------------------------------------------

    def add(
        self,
        tenant: str,
        uri: str,
        metadata: dict[str, object] | None = None,
        *,
        documents_source_id: str | None = None,
    ) -> RegisteredSource:
        """Register ``uri`` (credentials go to the secret store); the same place again replaces
        the earlier registration, credentials included. Raises ``ValueError`` for a bad URI."""
        if not is_tenant_name(tenant):
            raise ValueError(TENANT_RULE)
        kind = check_source_uri(uri)
        display = redact_uri(uri)
        source_id = registry_id(tenant, display)
        known = self._record(tenant, source_id)
        source = RegisteredSource(
            id=source_id,
            tenant=tenant,
            kind=kind,
            display_uri=display,
            metadata=dict(metadata or {}),
            created_at=known.created_at if known else utcnow(),
            documents_source_id=documents_source_id
            or (known.documents_source_id if known else None),
        )
        self.secrets.put(secret_name(tenant, source_id), uri)  # before the record names it
        self._put(source)
        return source

    def uri(self, source: RegisteredSource) -> str:
        """The URI as registered, credentials included: for opening the source only."""
        return self.secrets.get(secret_name(source.tenant, source.id))

    def set_webhook_key(self, source: RegisteredSource, key: str) -> None:
        """The key the source's HR system signs its webhooks with (write-only, like the URI)."""
        target = json.dumps({"tenant": source.tenant, "key": key})
        self.secrets.put(webhook_secret_name(source.id), target)

    def webhook_target(self, source_id: str) -> tuple[str, str] | None:
        """The tenant and signing key of a source's webhooks; None when it has none. Looked up
        by id alone: the webhook's caller is the HR system, which sends no API key."""
        if not SOURCE_ID.match(source_id):
            return None
        try:
            target = json.loads(self.secrets.get(webhook_secret_name(source_id)))
        except SecretNotFound:
            return None
        return str(target["tenant"]), str(target["key"])

    def set_documents_source_id(self, source: RegisteredSource, documents_source_id: str) -> None:
        current = self._record(source.tenant, source.id)
        if current is not None and current.documents_source_id != documents_source_id:
            self._put(current.model_copy(update={"documents_source_id": documents_source_id}))

    # -- reading ---------------------------------------------------------------------------

    def of_tenant(self, tenant: str) -> list[RegisteredSource]:
        return self._load(f"{SOURCES_PREFIX}{validate_tenant(tenant)}/")

    def get(self, tenant: str, source_id: str) -> RegisteredSource:
        """Raises ``SourceNotFound`` (also for another tenant's id, or an invalid one)."""
        found = self._record(tenant, source_id) if SOURCE_ID.match(source_id) else None
        if found is None:
            raise SourceNotFound(f"no source {source_id!r}")
        return found

    def view(self, source: RegisteredSource) -> SourceView:
        history = self.history(source)
        request = self._request(source)
        return SourceView(
            **source.model_dump(),
            syncs=history.runs,
            next_sync_at=history.next_sync_at,
            sync_requested_at=request.requested_at if request else None,
        )

    def all(self) -> list[RegisteredSource]:
        """Every tenant's sources (the connector's round)."""
        return self._load(SOURCES_PREFIX)

    def listed(self) -> set[tuple[str, str]]:
        """(tenant, id) of every source, from one listing: no record is read (the connector's
        poll). Records from before are migrated first, when the listing shows one."""
        keys = list(self.blobs.list(SOURCES_PREFIX))
        found = {_parse_key(SOURCES_PREFIX, k) for k in keys}
        if None in found:
            self.all()  # a clear record from before, or a damaged one: all() sorts them out
            found = {_parse_key(SOURCES_PREFIX, k) for k in self.blobs.list(SOURCES_PREFIX)}
        return {k for k in found if k is not None}

    def requested(self) -> set[tuple[str, str]]:
        """(tenant, id) of every source with a sync request, from one listing."""
        found = {_parse_key(REQUESTS_PREFIX, k) for k in self.blobs.list(REQUESTS_PREFIX)}
        return {k for k in found if k is not None}

    def _load(self, prefix: str) -> list[RegisteredSource]:
        """The records under ``prefix``, migrating those from before (clear URIs)."""
        sources = []
        for key in list(self.blobs.list(prefix)):
            raw = self._read(key)
            if raw is None:
                continue
            try:
                sources.append(RegisteredSource.model_validate_json(raw))
                continue
            except ValidationError:
                pass
            try:
                legacy = _LegacyRecord.model_validate_json(raw)
                sources.append(self.add(legacy.tenant, legacy.uri, legacy.metadata))
                self.blobs.delete(key)
                log.info("source.migrated", tenant=legacy.tenant, source=redact_uri(legacy.uri))
            except (ValidationError, ValueError, InvalidKey):
                log.warning("source.unreadable_record", blob_key=key)  # no URI: it may hold secrets
        return sorted({s.id: s for s in sources}.values(), key=lambda s: (s.tenant, s.id))

    # -- syncs -----------------------------------------------------------------------------

    def request_sync(self, source: RegisteredSource) -> datetime:
        """Ask the connector for a sync now; it takes the request at its next poll."""
        request = self._request(source) or _SyncRequest(requested_at=utcnow())
        self.blobs.put(_key(REQUESTS_PREFIX, source), request.model_dump_json().encode())
        return request.requested_at

    def take_sync_request(self, source: RegisteredSource) -> bool:
        """True (and the request is gone) when a sync was asked for."""
        if self._request(source) is None:
            return False
        self.blobs.delete(_key(REQUESTS_PREFIX, source))
        return True

    def history(self, source: RegisteredSource) -> SyncHistory:
        raw = self._read(_key(HISTORY_PREFIX, source))
        try:
            return SyncHistory.model_validate_json(raw) if raw else SyncHistory()
        except ValidationError:
            return SyncHistory()

    def schedule(self, source: RegisteredSource, next_sync_at: datetime) -> None:
        """Move the next scheduled sync (``datatorag ingest`` syncs now, so the connector waits)."""
        history = self.history(source).model_copy(update={"next_sync_at": next_sync_at})
        self.blobs.put(_key(HISTORY_PREFIX, source), history.model_dump_json(indent=1).encode())

    def record_sync(self, source: RegisteredSource, run: SyncRun, next_sync_at: datetime) -> None:
        runs = [run, *self.history(source).runs][:KEPT_SYNCS]
        history = SyncHistory(runs=runs, next_sync_at=next_sync_at)
        self.blobs.put(_key(HISTORY_PREFIX, source), history.model_dump_json(indent=1).encode())

    # -- removing --------------------------------------------------------------------------

    def delete(self, source: RegisteredSource, index: SearchIndex) -> int:
        """Forget the source, its credentials and history, and take its documents out of
        search now; returns how many documents left. A sync running meanwhile sees the record
        gone when it ends and removes what it brought in (``remove_documents``)."""
        self.blobs.delete(_key(SOURCES_PREFIX, source))
        self.blobs.delete(_key(REQUESTS_PREFIX, source))
        self.blobs.delete(_key(HISTORY_PREFIX, source))
        self.secrets.delete(secret_name(source.tenant, source.id))
        self.secrets.delete(webhook_secret_name(source.id))
        return self.remove_documents(source, index)

    def remove_documents(self, source: RegisteredSource, index: SearchIndex) -> int:
        if source.documents_source_id is None:
            return 0
        live, offset, page = [], 0, 500
        while docs := index.list_documents(
            source.tenant, source_id=source.documents_source_id, limit=page, offset=offset
        ):
            live += [d.doc_id for d in docs if d.status != DocumentStatus.DELETED]
            offset += page
        for doc_id in live:
            remove_document(self.blobs, index, source.tenant, doc_id)
        return len(live)

    def exists(self, source: RegisteredSource) -> bool:
        return self._record(source.tenant, source.id) is not None

    # -- storage ---------------------------------------------------------------------------

    def _put(self, source: RegisteredSource) -> None:
        self.blobs.put(_key(SOURCES_PREFIX, source), source.model_dump_json(indent=1).encode())

    def _record(self, tenant: str, source_id: str) -> RegisteredSource | None:
        raw = self._read(f"{SOURCES_PREFIX}{validate_tenant(tenant)}/{source_id}.json")
        try:
            return RegisteredSource.model_validate_json(raw) if raw else None
        except ValidationError:
            return None

    def _request(self, source: RegisteredSource) -> _SyncRequest | None:
        raw = self._read(_key(REQUESTS_PREFIX, source))
        try:
            return _SyncRequest.model_validate_json(raw) if raw else None
        except ValidationError:
            return None

    def _read(self, key: str) -> bytes | None:
        try:
            return self.blobs.get(key)
        except BlobNotFound:
            return None


def _key(prefix: str, source: RegisteredSource) -> str:
    return f"{prefix}{source.tenant}/{source.id}.json"


def _parse_key(prefix: str, key: str) -> tuple[str, str] | None:
    """(tenant, id) from ``<prefix><tenant>/<id>.json``; None for any other key."""
    tenant, _, name = key.removeprefix(prefix).partition("/")
    source_id = name.removesuffix(".json")
    if is_tenant_name(tenant) and SOURCE_ID.match(source_id) and name.endswith(".json"):
        return tenant, source_id
    return None
