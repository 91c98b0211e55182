"""The portal: server-rendered pages for employees (ask) and HR admins (documents, keys,
analytics, audit), served by the query API itself with every asset local (no CDN, no build)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from datatorag_query_api.portal.pages import STATIC, LoginRequired, router


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/portal/static", StaticFiles(directory=STATIC), name="portal-static")

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> RedirectResponse:
        # A path of our own, never built from the Host header.
        return RedirectResponse("/portal/login", status_code=303)
