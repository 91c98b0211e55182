"""Errors as RFC 9457 problem details (``application/problem+json``), for every route.

Unknown routes (404) and methods (405) come from Starlette's ``HTTPException`` and get the same
shape; a caller's mistake (``InvalidRequest``: a bad filter, tenant or key) is a 400 that says
what is wrong; any other exception, a ``ValueError`` included, becomes a 500 problem without
internals in the body (its traceback goes to the log).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match

from datatorag.domain.errors import (
    EmbeddingUnavailable,
    InvalidRequest,
    PermanentError,
    RetryableError,
)
from datatorag.log import get_logger

log = get_logger(__name__)

PROBLEM = "application/problem+json"


RETRY_AFTER_S = "5"
MAX_INSTANCE_CHARS = 512  # a longer path (a 100 kB id) is not echoed back

DESCRIPTIONS = {
    400: "Bad request: an unknown filter field or operator, several X-API-Key headers",
    401: "No valid API key in X-API-Key (or portal session, or employee token where accepted)",
    403: "A query key (or an employee token) on a route that needs an admin key",
    404: "No such document, source, answer or employee for this tenant",
    409: "The document is not in a state that allows this (a retry of one that has not failed)",
    413: "The document is larger than the configured limit",
    415: "The upload is not multipart/form-data",
    422: "The request does not match its schema",
    502: "The answer generator failed",
    503: "A dependency (the embedding endpoint, the answer generator) is unavailable: retry",
}


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    instance: str | None = None
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None  # 422: what is wrong where


def declared(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, served as ``application/problem+json``."""
    schema = ProblemDetails.model_json_schema()
    return {
        status: {"description": DESCRIPTIONS[status], "content": {PROBLEM: {"schema": schema}}}
        for status in statuses
    }


class Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.headers = headers


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status, **extra}
    if len(request.url.path) <= MAX_INSTANCE_CHARS:
        body["instance"] = request.url.path
    if detail:
        body["detail"] = detail
    all_headers = dict(headers or {})
    if status == 401:
        all_headers["WWW-Authenticate"] = "ApiKey"
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=all_headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.title, exc.detail, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's own 404 (unknown route) and 405 come through here. Its 405 names only the
        # methods of the first route of that path: Allow names those of every route of it.
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
        return problem_response(request, exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return problem_response(request, 422, "Invalid request", "see errors", errors=errors)

    @app.exception_handler(InvalidRequest)
    async def _invalid(request: Request, exc: InvalidRequest) -> JSONResponse:
        # Only the typed caller mistakes show their message; a stray ValueError is a 500.
        return problem_response(request, 400, "Bad request", str(exc))

    @app.exception_handler(EmbeddingUnavailable)
    async def _embedding(request: Request, exc: EmbeddingUnavailable) -> JSONResponse:
        # The cause names internal hosts: it goes to the log, the caller learns when to retry.
        log.warning("embedding.unavailable", path=request.url.path, cause=str(exc))
        return problem_response(
            request,
            503,
            "Embedding endpoint unavailable",
            "the embedding model cannot be reached right now; retry shortly",
            headers={"Retry-After": RETRY_AFTER_S},
        )

    @app.exception_handler(RetryableError)
    async def _retryable(request: Request, exc: RetryableError) -> JSONResponse:
        headers = {"Retry-After": RETRY_AFTER_S}
        return problem_response(request, 503, "Service unavailable", str(exc), headers=headers)

    @app.exception_handler(PermanentError)
    async def _permanent(request: Request, exc: PermanentError) -> JSONResponse:
        return problem_response(request, 502, "Bad gateway", str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request.failed", path=request.url.path)
        return problem_response(request, 500, "Internal server error", "see the server log")


def _allowed_methods(request: Request) -> set[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return methods
