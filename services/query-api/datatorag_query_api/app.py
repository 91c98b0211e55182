"""The query API: search, documents, health. Every /v1 route is scoped to the caller's tenant."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field

from datatorag.models import DocumentRecord, DocumentStatus, SearchHit
from datatorag.ports import Embeddings, SearchIndex
from datatorag_query_api import problems
from datatorag_query_api.keys import ApiKeyStore, KeyInfo
from datatorag_query_api.problems import Problem
from datatorag_query_api.search import Mode, Searcher

log = structlog.get_logger(__name__)


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=10, ge=1, le=100)
    mode: Mode = "hybrid"
    filters: dict[str, Any] | None = None


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    took_ms: float


class DocumentList(BaseModel):
    documents: list[DocumentRecord]
    limit: int
    offset: int


@dataclass
class Services:
    index: SearchIndex
    embeddings: Embeddings
    keys: ApiKeyStore
    searcher: Searcher


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def caller(
    request: Request,
    key: Annotated[str | None, Depends(APIKeyHeader(name="X-API-Key", auto_error=False))],
) -> KeyInfo:
    """The tenant behind the request's API key; 401 without a valid one."""
    info = services_of(request).keys.authenticate(key) if key else None
    if info is None:
        raise Problem(401, "Unauthorized", "send a valid API key in the X-API-Key header")
    structlog.contextvars.bind_contextvars(tenant=info.tenant)
    return info


Caller = Annotated[KeyInfo, Depends(caller)]


def create_app(index: SearchIndex, embeddings: Embeddings, keys: ApiKeyStore) -> FastAPI:
    app = FastAPI(
        title="DatatoRAG",
        version="0.1.0",
        description="Cited passages from your HR documents. Authenticate with `X-API-Key`.",
    )
    services = Services(index, embeddings, keys, Searcher(index, embeddings))
    app.state.services = services
    problems.install(app)

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            structlog.contextvars.unbind_contextvars("request_id", "tenant")
        response.headers["X-Request-ID"] = request_id
        log.info(
            "request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            ms=round(1000 * (time.perf_counter() - started), 1),
        )
        return response

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> dict[str, Any]:
        """Readiness: the index opens and the embedding endpoint answers."""
        try:
            dimension = services.embeddings.dimension
        except Exception as err:
            raise Problem(503, "Not ready", f"embedding endpoint: {err}") from err
        return {"status": "ready", "embedding_dimension": dimension}

    @app.post("/v1/search", tags=["search"])
    def search(body: SearchRequest, who: Caller) -> SearchResponse:
        """Passages that answer the query, best first, with their document, pages and heading."""
        started = time.perf_counter()
        hits = services.searcher.search(who.tenant, body.query, body.top_k, body.mode, body.filters)
        return SearchResponse(hits=hits, took_ms=round(1000 * (time.perf_counter() - started), 2))

    @app.get("/v1/documents", tags=["documents"])
    def list_documents(
        who: Caller,
        status: DocumentStatus | None = None,
        source_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> DocumentList:
        """The tenant's documents with their status (fetched, processing, indexed, failed)."""
        docs = services.index.list_documents(
            who.tenant, source_id=source_id, status=status, limit=limit, offset=offset
        )
        return DocumentList(documents=docs, limit=limit, offset=offset)

    @app.get("/v1/documents/{doc_id}", tags=["documents"])
    def get_document(doc_id: str, who: Caller) -> DocumentRecord:
        """One document's status and metadata; failed documents say why in ``reason``."""
        doc = services.index.get_document(who.tenant, doc_id)
        if doc is None:
            raise Problem(404, "Not found", f"no document {doc_id!r}")
        return doc

    return app
