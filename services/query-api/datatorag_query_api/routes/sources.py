"""``/v1/sources``: a tenant's registered sources, with admin keys only.

Registering stores the URI's credentials encrypted (never returned, never logged); the
connector polls the registry and runs the syncs, so a sync request is a record in the shared
blob store that it picks up within ``connector_poll_s``. Deleting a source takes its documents
out of search before the response.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.concurrency import run_in_threadpool

from datatorag.domain.sources import RegisteredSource, SourceView
from datatorag.ports import SearchIndex
from datatorag.usecases.sources import SourceCatalog, SourceNotFound
from datatorag_query_api import problems
from datatorag_query_api.auth import AdminCaller
from datatorag_query_api.problems import Problem

router = APIRouter(prefix="/v1/sources", tags=["sources"])

PROBLEM_RESPONSES = problems.declared(401, 403, 422)
NOT_FOUND = problems.declared(404)


class SourceCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"uri": "sftp://hr:secret@files.example.com/policies"}]},
    )

    uri: str = Field(
        min_length=1,
        max_length=4096,
        description="e.g. sftp://user:password@host/folder or bamboohr://API_KEY@acme; "
        "credentials are stored encrypted and never returned",
        examples=["sftp://hr:secret@files.example.com/policies"],
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    webhook_key: SecretStr | None = Field(
        default=None,
        max_length=1024,
        description="BambooHR only: the webhook's private key, to accept its signed employee "
        "updates at POST /v1/webhooks/bamboohr/{id}; stored encrypted, never returned",
    )


class SourceList(BaseModel):
    sources: list[SourceView]


class SyncRequested(BaseModel):
    id: str
    sync_requested_at: str
    status_url: str


class SourceDeleted(BaseModel):
    id: str
    documents_removed: int


def _catalog(request: Request) -> SourceCatalog:
    catalog: SourceCatalog = request.app.state.services.sources
    return catalog


def _index(request: Request) -> SearchIndex:
    index: SearchIndex = request.app.state.services.index
    return index


def _source(request: Request, tenant: str, source_id: str) -> RegisteredSource:
    try:
        return _catalog(request).get(tenant, source_id)
    except SourceNotFound as err:
        raise Problem(404, "Not found", "no such source for this tenant") from err


@router.post(
    "",
    status_code=201,
    responses={**PROBLEM_RESPONSES, **problems.declared(400)},
)
def add_source(
    body: SourceCreate, who: AdminCaller, request: Request, response: Response
) -> SourceView:
    """Register a source (the same place again replaces it, credentials included). The
    connector syncs it within seconds; follow ``GET /v1/sources/{id}``."""
    key = body.webhook_key.get_secret_value() if body.webhook_key is not None else None
    source = register(request, who.tenant, who.key_id, body.uri, body.metadata, key)
    response.headers["Location"] = f"/v1/sources/{source.id}"
    return _catalog(request).view(source)


def register(
    request: Request,
    tenant: str,
    actor: str,
    uri: str,
    metadata: dict[str, Any],
    webhook_key: str | None = None,
) -> RegisteredSource:
    """Register a source for the tenant (the API and the portal); a 400 problem says why not."""
    scheme = uri.partition("://")[0].lower()
    if scheme == "file" or "://" not in uri:
        raise Problem(
            400,
            "Bad source",
            "folders on the server are registered by its operator (`datatorag ingest`), "
            "not through the API",
        )
    try:
        source = _catalog(request).add(tenant, uri, metadata)
    except ValueError as err:
        raise Problem(400, "Bad source", str(err)) from err
    if webhook_key is not None:
        _catalog(request).set_webhook_key(source, webhook_key)
    request.app.state.services.activity.admin(
        tenant, actor, "source.add", source.id, uri=source.display_uri
    )
    return source


@router.get("", responses=PROBLEM_RESPONSES)
def list_sources(who: AdminCaller, request: Request) -> SourceList:
    """The tenant's sources, each with its last syncs and the next scheduled run."""
    catalog = _catalog(request)
    return SourceList(sources=[catalog.view(s) for s in catalog.of_tenant(who.tenant)])


@router.get("/{source_id}", responses={**PROBLEM_RESPONSES, **NOT_FOUND})
def get_source(source_id: str, who: AdminCaller, request: Request) -> SourceView:
    """One source: its last syncs (scanned, new, modified, deleted, failed with reasons,
    duration) and the next scheduled run."""
    return _catalog(request).view(_source(request, who.tenant, source_id))


@router.post("/{source_id}/sync", status_code=202, responses={**PROBLEM_RESPONSES, **NOT_FOUND})
def sync_source(
    source_id: str, who: AdminCaller, request: Request, response: Response
) -> SyncRequested:
    """Ask for a sync now: the connector starts it at its next poll (seconds). Asking again
    before it starts changes nothing."""
    source = _source(request, who.tenant, source_id)
    requested_at = _catalog(request).request_sync(source)
    request.app.state.services.activity.admin(who.tenant, who.key_id, "source.sync", source.id)
    url = f"/v1/sources/{source.id}"
    response.headers["Location"] = url
    return SyncRequested(id=source.id, sync_requested_at=requested_at.isoformat(), status_url=url)


@router.delete("/{source_id}", responses={**PROBLEM_RESPONSES, **NOT_FOUND})
async def delete_source(source_id: str, who: AdminCaller, request: Request) -> SourceDeleted:
    """Forget the source and its credentials; its documents leave search before this answers."""
    source = _source(request, who.tenant, source_id)
    removed = await run_in_threadpool(_catalog(request).delete, source, _index(request))
    activity = request.app.state.services.activity
    await run_in_threadpool(
        activity.admin, who.tenant, who.key_id, "source.delete", source.id, uri=source.display_uri
    )
    return SourceDeleted(id=source.id, documents_removed=removed)
