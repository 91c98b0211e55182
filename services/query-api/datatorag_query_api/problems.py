"""Errors as RFC 9457 problem details (``application/problem+json``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from datatorag.errors import EmbeddingUnavailable, InvalidKey

PROBLEM = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str | None = None) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail


def problem_response(
    request: Request, status: int, title: str, detail: str | None = None, **extra: object
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "instance": request.url.path,
        **extra,
    }
    if detail:
        body["detail"] = detail
    headers = {"WWW-Authenticate": "ApiKey"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.title, exc.detail)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return problem_response(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return problem_response(request, 422, "Invalid request", "see errors", errors=errors)

    @app.exception_handler(ValueError)
    async def _value(request: Request, exc: ValueError) -> JSONResponse:
        return problem_response(request, 400, "Bad request", str(exc))

    @app.exception_handler(InvalidKey)
    async def _invalid(request: Request, exc: InvalidKey) -> JSONResponse:
        return problem_response(request, 400, "Bad request", str(exc))

    @app.exception_handler(EmbeddingUnavailable)
    async def _embedding(request: Request, exc: EmbeddingUnavailable) -> JSONResponse:
        return problem_response(request, 503, "Embedding endpoint unavailable", str(exc))
