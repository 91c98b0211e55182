"""The portal's pages. Reading pages need an admin session (or, for /portal/ask, an employee
token held by the page's script); every form that changes something carries the session's CSRF
token, and the session cookie is HttpOnly and SameSite=Strict."""

from __future__ import annotations

import secrets
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from datatorag.domain.models import DocumentStatus
from datatorag.usecases.sources import SourceNotFound
from datatorag_query_api import insights
from datatorag_query_api.problems import Problem
from datatorag_query_api.routes import sources as sources_routes
from datatorag_query_api.sessions import COOKIE, LIFETIME, Session

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)
LOGIN_CSRF = "dtr_login"
# Admin pages are never framed (clickjacking); the ask page may be, inside a vendor's product.
ADMIN_CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
ASK_CSP = "default-src 'self'; img-src 'self' data:; form-action 'self'"


class LoginRequired(Exception):
    """No live admin session: the portal sends the browser to the login page."""


def admin_session(request: Request) -> Session:
    session: Session | None = request.app.state.services.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        raise LoginRequired
    request.state.tenant = session.key.tenant
    return session


Admin = Annotated[Session, Depends(admin_session)]


def check_csrf(session: Session, token: str) -> None:
    if not session.csrf_matches(token):
        raise LoginRequired  # a forged or stale form: start again from a fresh page


def page(
    request: Request, name: str, session: Session | None, csp: str = ADMIN_CSP, **context: Any
) -> HTMLResponse:
    context.update(session=session, csrf=session.csrf if session else "")
    response = templates.TemplateResponse(request, name, context)
    response.headers["Content-Security-Policy"] = csp
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # employee tokens ride in URL fragments
    return response


def services(request: Request) -> Any:
    return request.app.state.services


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/portal/", status_code=303)


@router.get("/portal/")
def portal_home(request: Request) -> RedirectResponse:
    signed_in = services(request).sessions.get(request.cookies.get(COOKIE)) is not None
    return RedirectResponse("/portal/documents" if signed_in else "/portal/login", status_code=303)


@router.get("/portal/login")
def login_page(request: Request, error: str = "") -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", None, login_csrf=token, error=error)
    response.set_cookie(LOGIN_CSRF, token, httponly=True, samesite="strict", secure=_https(request))
    return response


@router.post("/portal/login")
def login(
    request: Request, api_key: Annotated[str, Form()], csrf: Annotated[str, Form()]
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF, "")
    if not expected or not secrets.compare_digest(expected.encode(), csrf.encode()):
        return RedirectResponse("/portal/login?error=expired", status_code=303)
    key = services(request).keys.authenticate(api_key.strip())
    if key is None or not key.is_admin:  # a query key may search, not manage
        return RedirectResponse("/portal/login?error=invalid", status_code=303)
    token = services(request).sessions.start(key)
    services(request).activity.admin(key.tenant, key.key_id, "portal.login")
    response = RedirectResponse("/portal/documents", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=_https(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF)
    return response


@router.post("/portal/logout")
def logout(request: Request, session: Admin, csrf: Annotated[str, Form()]) -> Response:
    check_csrf(session, csrf)
    services(request).sessions.end(request.cookies[COOKIE])
    response = RedirectResponse("/portal/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/portal/ask")
def ask_page(request: Request) -> HTMLResponse:
    """For employees (a token in the URL fragment, kept by the script) and signed-in admins."""
    session = services(request).sessions.get(request.cookies.get(COOKIE))
    return page(request, "ask.html", session, csp=ASK_CSP)


@router.get("/portal/documents")
def documents_page(
    request: Request,
    session: Admin,
    status: DocumentStatus | None = None,
    source_id: str | None = None,
    media_type: str | None = None,
) -> HTMLResponse:
    index = services(request).index
    tenant = session.key.tenant
    everything = index.list_documents(tenant, limit=500, offset=0)
    shown = [
        d
        for d in everything
        if (status is None or d.status == status)
        and (source_id is None or d.source_id == source_id)
        and (media_type is None or d.media_type == media_type)
    ]
    return page(
        request,
        "documents.html",
        session,
        documents=shown,
        sources=sorted({d.source_id for d in everything}),
        media_types=sorted({d.media_type for d in everything}),
        statuses=[s.value for s in DocumentStatus],
        chosen={
            "status": status or "",
            "source_id": source_id or "",
            "media_type": media_type or "",
        },
    )


@router.post("/portal/documents/{doc_id}/{action}")
def document_action(
    request: Request, session: Admin, doc_id: str, action: str, csrf: Annotated[str, Form()]
) -> RedirectResponse:
    check_csrf(session, csrf)
    tenant, actor = session.key.tenant, f"portal:{session.key.key_id}"
    uploads = services(request).uploads
    if action == "delete":
        doc = uploads.remove(tenant, doc_id)
    elif action == "retry":
        doc = uploads.retry(tenant, doc_id)
    else:
        raise LoginRequired
    if doc is not None:
        services(request).activity.admin(
            tenant, actor, f"document.{action}", doc_id, title=doc.title
        )
    return RedirectResponse("/portal/documents", status_code=303)


@router.get("/portal/sources")
def sources_page(request: Request, session: Admin, error: str = "") -> HTMLResponse:
    catalog = services(request).sources
    views = [catalog.view(s) for s in catalog.of_tenant(session.key.tenant)]
    return page(request, "sources.html", session, sources=views, error=error)


@router.post("/portal/sources")
def add_source(
    request: Request,
    session: Admin,
    csrf: Annotated[str, Form()],
    uri: Annotated[str, Form()],
    tags: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(session, csrf)
    metadata: dict[str, Any] = {}
    if tag_list := [t.strip() for t in tags.split(",") if t.strip()]:
        metadata["tags"] = tag_list
    actor = f"portal:{session.key.key_id}"
    try:
        sources_routes.register(request, session.key.tenant, actor, uri.strip(), metadata)
    except Problem as err:
        return sources_page(request, session, error=err.detail or err.title)
    return RedirectResponse("/portal/sources", status_code=303)


@router.post("/portal/sources/{source_id}/{action}")
def source_action(
    request: Request, session: Admin, source_id: str, action: str, csrf: Annotated[str, Form()]
) -> RedirectResponse:
    check_csrf(session, csrf)
    catalog, tenant = services(request).sources, session.key.tenant
    try:
        source = catalog.get(tenant, source_id)
    except SourceNotFound:
        return RedirectResponse("/portal/sources", status_code=303)
    if action == "sync":
        catalog.request_sync(source)
    elif action == "delete":
        catalog.delete(source, services(request).index)
    else:
        raise LoginRequired
    actor = f"portal:{session.key.key_id}"
    services(request).activity.admin(tenant, actor, f"source.{action}", source_id)
    return RedirectResponse("/portal/sources", status_code=303)


@router.get("/portal/keys")
def keys_page(request: Request, session: Admin) -> HTMLResponse:
    return _keys(request, session)


def _keys(request: Request, session: Admin, **created: str) -> HTMLResponse:
    tenant = session.key.tenant
    return page(
        request,
        "keys.html",
        session,
        keys=services(request).keys.list(tenant),
        signing_secrets=services(request).signing.list(tenant),
        **created,
    )


@router.post("/portal/keys")
def create_key(request: Request, session: Admin, csrf: Annotated[str, Form()]) -> HTMLResponse:
    check_csrf(session, csrf)
    key = services(request).keys.create(session.key.tenant)
    key_id = key.split("_")[1]
    services(request).activity.admin(
        session.key.tenant, f"portal:{session.key.key_id}", "key.create", key_id
    )
    return _keys(request, session, new_key=key)  # shown once, on this response only


@router.post("/portal/keys/{key_id}/revoke")
def revoke_key(
    request: Request, session: Admin, key_id: str, csrf: Annotated[str, Form()]
) -> RedirectResponse:
    check_csrf(session, csrf)
    if services(request).keys.revoke(session.key.tenant, key_id):
        services(request).activity.admin(
            session.key.tenant, f"portal:{session.key.key_id}", "key.revoke", key_id
        )
    return RedirectResponse("/portal/keys", status_code=303)


@router.post("/portal/signing-secrets")
def create_secret(request: Request, session: Admin, csrf: Annotated[str, Form()]) -> HTMLResponse:
    check_csrf(session, csrf)
    kid, secret = services(request).signing.create(session.key.tenant)
    services(request).activity.admin(
        session.key.tenant, f"portal:{session.key.key_id}", "signing_secret.create", kid
    )
    return _keys(request, session, new_secret=secret, new_kid=kid)


@router.post("/portal/signing-secrets/{kid}/revoke")
def revoke_secret(
    request: Request, session: Admin, kid: str, csrf: Annotated[str, Form()]
) -> RedirectResponse:
    check_csrf(session, csrf)
    if services(request).signing.revoke(session.key.tenant, kid):
        services(request).activity.admin(
            session.key.tenant, f"portal:{session.key.key_id}", "signing_secret.revoke", kid
        )
    return RedirectResponse("/portal/keys", status_code=303)


@router.get("/portal/analytics")
def analytics_page(
    request: Request, session: Admin, since: date | None = None, until: date | None = None
) -> HTMLResponse:
    result = insights.analytics_for(request, session.key.tenant, since, until)
    busiest = max((d.answered + d.abstained for d in result.days), default=0)
    return page(request, "analytics.html", session, a=result, busiest=max(busiest, 1))


@router.get("/portal/audit")
def audit_page(
    request: Request, session: Admin, since: date | None = None, until: date | None = None
) -> HTMLResponse:
    start, end = insights.period(since, until, services(request).activity.retention)
    actions, answers = insights.audit_entries(request, session.key.tenant, since, until)
    return page(
        request, "audit.html", session, actions=actions, answers=answers, start=start, end=end
    )


def _https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
