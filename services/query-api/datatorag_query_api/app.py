"""The query API: search, answers, documents, health. Every /v1 route is scoped to the caller's
tenant: the tenant comes from the API key alone, never from the request's path, query or body."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

import structlog
from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datatorag.domain import filters
from datatorag.domain.employees import Employee
from datatorag.domain.errors import GenerationFailed
from datatorag.domain.models import METADATA_KEY, DocumentRecord, DocumentStatus, SearchHit
from datatorag.ports import Embeddings, EmployeeDirectory, SearchIndex
from datatorag.usecases.activity import ActivityRecorder
from datatorag.usecases.answers import Answer, Answerer
from datatorag.usecases.search import Mode, Searcher
from datatorag.usecases.sources import SourceCatalog
from datatorag_query_api import insights, portal, problems, swagger_ui
from datatorag_query_api.auth import AdminCaller, Reader, ReaderDep
from datatorag_query_api.employees import EmployeeSpec
from datatorag_query_api.employees import resolve as resolve_employee
from datatorag_query_api.keys import ApiKeyStore
from datatorag_query_api.problems import Problem
from datatorag_query_api.routes import sources as sources_routes
from datatorag_query_api.routes import webhooks as webhooks_routes
from datatorag_query_api.sessions import PortalSessions
from datatorag_query_api.signing import SigningSecrets
from datatorag_query_api.uploads import (
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TITLE_CHARS,
    TAGS,
    Uploads,
    read_upload,
    resend_lost_announcements,
)

log = structlog.get_logger(__name__)

READINESS_PROBE = "readiness probe"
NOT_BLANK = r"\S"  # a query of only spaces would match arbitrary passages
Filters = Annotated[
    dict[str, Any] | None,
    WithJsonSchema(
        {
            "anyOf": [filters.JSON_SCHEMA, {"type": "null"}],
            "description": "Restrict hits by document: `doc_id`, `source_id`, `media_type`, "
            "`effective_date` or `metadata.<key>` (e.g. `metadata.countries`), each a value or "
            'a list (any of them); a range as `{"gte": ..., "lt": ...}`. Anything else (an '
            "unknown field or operator) is a 400 problem.",
        }
    ),
]


class SearchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",  # a stray "tenant" is refused, never obeyed
        json_schema_extra={
            "examples": [
                {"query": "How much parental leave do I get?", "top_k": 3},
                {
                    "query": "vacation carry over",
                    "mode": "keyword",
                    "filters": {"metadata.countries": "US"},
                },
            ]
        },
    )

    query: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK)
    top_k: int = Field(default=10, ge=1, le=100)
    mode: Mode = "hybrid"
    filters: Filters = None
    employee: EmployeeSpec | None = None


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    took_ms: float
    keyword_only: str | None = Field(
        default=None,
        description="why vector search was skipped and the hits come from keywords alone (the "
        "tenant's index is in another embedding space until it is re-embedded); null normally",
    )


class AnswerResponse(Answer):
    answer_id: str  # for feedback: POST /v1/answers/{answer_id}/feedback


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"helpful": True, "comment": "Clear"}]}
    )

    helpful: bool
    comment: str = Field(default="", max_length=2000)


class QueryRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "Can I carry over unused vacation?"}]},
    )

    question: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK)
    top_k: int = Field(default=5, ge=1, le=50)
    filters: Filters = None
    employee: EmployeeSpec | None = None


# 404: an employee id not in the tenant's directory; 403: an employee token with an employee.
EMPLOYEE_ERRORS = problems.declared(400, 401, 403, 404, 422, 503)

# Far past any real listing, and offset + limit still fits the index's 64-bit integers.
MAX_OFFSET = 2**62


class DocumentList(BaseModel):
    documents: list[DocumentRecord]
    limit: int
    offset: int
    next_offset: int | None  # the offset of the next page; null on the last page


class Accepted(BaseModel):
    doc_id: str
    status: str
    status_url: str


class UploadAccepted(Accepted):
    outcome: str  # added, changed (a new version) or unchanged (same bytes: nothing to do)


METADATA_SCALARS = ["string", "number", "boolean", "null"]
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "minLength": 1},
                        "title": {"type": "string", "maxLength": MAX_TITLE_CHARS},
                        "tags": {
                            "type": "string",
                            "description": f"comma-separated, at most {MAX_TAGS} tags of "
                            f"{MAX_TAG_CHARS} characters",
                            "pattern": f"^{TAGS.pattern}$",
                        },
                        "metadata": {
                            "type": "object",
                            "description": "filterable keys (metadata.<key>), each a string, "
                            "number, boolean, null or a list of them",
                            "propertyNames": {"pattern": METADATA_KEY.pattern},
                            "additionalProperties": {
                                "type": [*METADATA_SCALARS, "array"],
                                "items": {"type": METADATA_SCALARS},
                            },
                        },
                    },
                    "additionalProperties": False,
                },
                "encoding": {"metadata": {"contentType": "application/json"}},
            }
        },
    }
}


@dataclass
class Services:
    index: SearchIndex
    embeddings: Embeddings
    keys: ApiKeyStore
    searcher: Searcher
    answerer: Answerer
    uploads: Uploads
    activity: ActivityRecorder
    signing: SigningSecrets
    sessions: PortalSessions
    sources: SourceCatalog
    directory: EmployeeDirectory
    max_document_bytes: int
    webhook_max_age_s: float = 300.0  # BambooHR deliveries older than this are replays
    search_threads: int = 2  # searches at once (wiring.search_threads)


class RequestContext:
    """A request id (the caller's ``X-Request-ID`` or a new one) on the response and the logs,
    and one access-log line per request.

    Plain ASGI: ``@app.middleware`` would wrap every request in a task group and a stream.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = Headers(scope=scope).get("x-request-id") or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started, status = time.perf_counter(), 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round(1000 * (time.perf_counter() - started), 1),
                tenant=scope.get("state", {}).get("tenant"),
            )
            structlog.contextvars.unbind_contextvars("request_id", "tenant")


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def status_url(doc_id: str) -> str:
    return f"/v1/documents/{doc_id}"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Background work of each API process: uploads whose announcement was lost go out again."""
    services: Services = app.state.services
    sweep = asyncio.create_task(resend_lost_announcements(services.uploads, services.keys.tenants))
    try:
        yield
    finally:
        sweep.cancel()
        with suppress(asyncio.CancelledError):
            await sweep


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        lifespan=lifespan,
        title="DatatoRAG",
        version="0.1.0",
        description="Cited answers and passages from your HR documents. "
        "Authenticate with `X-API-Key`. Errors are RFC 9457 problem details.",
        # Starlette would redirect /v1/search/ to a URL built from the Host header.
        redirect_slashes=False,
        docs_url=None,  # swagger_ui.py serves it without a CDN; ReDoc would need one
        redoc_url=None,
    )
    app.state.services = services
    search_threads = CapacityLimiter(services.search_threads)
    problems.install(app)
    swagger_ui.install(app)
    app.include_router(sources_routes.router)
    app.include_router(webhooks_routes.router)
    app.state.webhook_replays = webhooks_routes.ReplayGuard()
    app.include_router(insights.router)
    portal.install(app)

    app.add_middleware(RequestContext)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses=problems.declared(503))
    def readyz() -> dict[str, Any]:
        """Readiness: the embedding endpoint embeds a probe now (searches need it)."""
        try:
            dimension = int(services.embeddings.embed([READINESS_PROBE]).shape[1])
        except Exception as err:
            # The cause names internal hosts: it goes to the log, not to an unauthenticated caller.
            log.warning("readyz.embedding_unavailable", cause=str(err))
            raise Problem(503, "Not ready", "the embedding endpoint does not answer") from err
        return {"status": "ready", "embedding_dimension": dimension}

    def employee_of(who: Reader, spec: EmployeeSpec | None) -> Employee | None:
        """Whom the search is for: an employee token's own employee (never another one), else
        the request's ``employee``, if any."""
        if who.employee is None:
            return resolve_employee(services.directory, who.tenant, spec)
        if spec is not None:
            raise Problem(400, "Bad request", "an employee token searches as its own employee")
        if who.employee.country or who.employee.employment_type or who.employee.department:
            return who.employee
        # Only an id: the directory's facts when it knows the employee, else none known (the
        # vendor vouched for the person; what applies to them is then every policy, labelled).
        return services.directory.get(who.tenant, who.employee.id) or who.employee

    @app.post("/v1/search", tags=["search"], responses=EMPLOYEE_ERRORS)
    async def search(body: SearchRequest, who: ReaderDep) -> SearchResponse:
        """Passages that answer the query, best first, with their document, pages and heading."""
        started = time.perf_counter()
        employee = None
        if body.employee is not None or who.employee is not None:  # a directory read: off the loop
            employee = await run_in_threadpool(employee_of, who, body.employee)
        searcher, vector = services.searcher, None
        if body.mode != "keyword":
            # Waiting on the embedding endpoint: any number at once, so it can batch them.
            vector = searcher.query_vectors.cached(
                who.tenant, body.query
            ) or await run_in_threadpool(searcher.query_vectors.vector, who.tenant, body.query)
        search = partial(
            searcher.find,
            who.tenant,
            body.query,
            body.top_k,
            body.mode,
            body.filters,
            vector,
            employee,
        )
        found = await to_thread.run_sync(search, limiter=search_threads)
        took_ms = round(1000 * (time.perf_counter() - started), 2)
        return SearchResponse(hits=found.hits, took_ms=took_ms, keyword_only=found.keyword_only)

    @app.post("/v1/query", tags=["search"], responses={**EMPLOYEE_ERRORS, **problems.declared(502)})
    def query(body: QueryRequest, who: ReaderDep) -> AnswerResponse:
        """An answer written from the tenant's passages, each sentence citing them as ``[n]``.

        Abstains ("The documents do not answer this question.") when nothing relevant was
        retrieved; the hits are returned either way. Every answer goes to the tenant's question
        log (question masked, employee hashed); ``answer_id`` takes feedback.
        """
        started = time.perf_counter()
        employee = employee_of(who, body.employee)
        try:
            answer = services.answerer.answer(
                who.tenant, body.question, body.top_k, body.filters, employee
            )
        except GenerationFailed as err:
            if err.retryable:
                raise Problem(
                    503, "Answer generator unavailable", str(err), {"Retry-After": "5"}
                ) from err
            raise Problem(502, "Answer generator failed", str(err)) from err
        latency_ms = 1000 * (time.perf_counter() - started)
        answer_id = services.activity.answered(
            who.tenant,
            body.question,
            answer,
            latency_ms,
            employee_id=who.employee.id if who.employee else None,
            channel=who.channel,
        )
        return AnswerResponse(**answer.model_dump(), answer_id=answer_id)

    @app.post(
        "/v1/answers/{answer_id}/feedback",
        tags=["search"],
        status_code=204,
        responses=problems.declared(400, 401, 404, 422),
    )
    def feedback(answer_id: str, body: FeedbackRequest, who: ReaderDep) -> Response:
        """Thumbs up or down, with an optional comment, on one of the tenant's answers."""
        if not services.activity.feedback(who.tenant, answer_id, body.helpful, body.comment):
            raise Problem(404, "Not found", "no such answer")
        return Response(status_code=204)

    @app.post(
        "/v1/documents",
        tags=["documents"],
        status_code=202,
        openapi_extra=UPLOAD_BODY,
        responses={
            200: {"model": UploadAccepted, "description": "Same bytes: nothing to do"},
            **problems.declared(400, 401, 403, 413, 415, 422),
        },
    )
    async def upload_document(request: Request, who: AdminCaller) -> JSONResponse:
        """Upload a document (multipart ``file``; optional ``title``, ``tags``, ``metadata``).

        The same file name replaces the earlier upload (a new version); the same bytes change
        nothing (200). Follow ``status_url`` until the status is ``indexed`` or ``failed``.
        """
        form = await read_upload(request, services.max_document_bytes)
        announced = await run_in_threadpool(services.uploads.store, who.tenant, form)
        services.activity.admin(
            who.tenant,
            who.key_id,
            "document.upload",
            announced.doc_id,
            title=announced.record.title,
            outcome=announced.outcome,
        )
        url = status_url(announced.doc_id)
        body = UploadAccepted(
            doc_id=announced.doc_id,
            status=announced.record.status,
            status_url=url,
            outcome=announced.outcome,
        )
        return JSONResponse(
            body.model_dump(),
            status_code=200 if announced.outcome == "unchanged" else 202,
            headers={"Location": url},
        )

    @app.delete(
        "/v1/documents/{doc_id}",
        tags=["documents"],
        responses=problems.declared(400, 401, 403, 404),
    )
    def delete_document(doc_id: str, who: AdminCaller, response: Response) -> Accepted:
        """Remove a document at once: its passages leave search and its stored files are
        deleted before this answers; its status becomes deleted. Deleting it again is a no-op."""
        doc = services.uploads.remove(who.tenant, doc_id)
        if doc is None:
            raise Problem(404, "Not found", "no such document for this tenant")
        services.activity.admin(who.tenant, who.key_id, "document.delete", doc_id, title=doc.title)
        response.headers["Location"] = status_url(doc_id)
        return Accepted(doc_id=doc_id, status=doc.status, status_url=status_url(doc_id))

    @app.post(
        "/v1/documents/{doc_id}/retry",
        tags=["documents"],
        status_code=202,
        responses=problems.declared(401, 403, 404, 409),
    )
    def retry_document(doc_id: str, who: AdminCaller, response: Response) -> Accepted:
        """Process a failed document's stored version again (after fixing what failed it, e.g.
        an outage or a raised limit). A document that has not failed is a 409."""
        doc = services.uploads.retry(who.tenant, doc_id)
        if doc is None:
            raise Problem(404, "Not found", "no such document for this tenant")
        if doc.status != DocumentStatus.FETCHED:
            raise Problem(409, "Conflict", f"the document is {doc.status}, not failed")
        services.activity.admin(who.tenant, who.key_id, "document.retry", doc_id, title=doc.title)
        response.headers["Location"] = status_url(doc_id)
        return Accepted(doc_id=doc_id, status=doc.status, status_url=status_url(doc_id))

    @app.get("/v1/documents", tags=["documents"], responses=problems.declared(400, 401, 403, 422))
    def list_documents(
        who: AdminCaller,
        status: DocumentStatus | None = None,
        source_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> DocumentList:
        """The tenant's documents with their status (fetched, processing, indexed, failed).

        Pages with ``limit`` and ``offset``; ``next_offset`` is null on the last page.
        """
        docs = services.index.list_documents(
            who.tenant, source_id=source_id, status=status, limit=limit + 1, offset=offset
        )
        more = len(docs) > limit
        return DocumentList(
            documents=docs[:limit],
            limit=limit,
            offset=offset,
            next_offset=offset + limit if more else None,
        )

    @app.get(
        "/v1/documents/{doc_id}",
        tags=["documents"],
        responses=problems.declared(400, 401, 403, 404),
    )
    def get_document(doc_id: str, who: AdminCaller) -> DocumentRecord:
        """One document's status and metadata; failed documents say why in ``reason``."""
        doc = services.index.get_document(who.tenant, doc_id)
        if doc is None:
            raise Problem(404, "Not found", "no such document for this tenant")
        return doc

    return app
