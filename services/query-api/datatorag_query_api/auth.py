"""Who is calling: an API key, an admin's portal session, or an employee's signed token.

- ``X-API-Key``: API consumers; the key's tenant, never anything in the request, scopes it.
  ``Caller`` admits any valid key; ``AdminCaller`` only an admin key (a query key gets a 403).
- The portal's session cookie: an admin who logged in with an admin key. Requests that change
  something must also send the session's CSRF token (``X-CSRF-Token``).
- ``Authorization: Bearer <JWT>``: an employee's short-lived token from the tenant's HR-tech
  vendor (``signing.py``); search, ask and feedback only (``ReaderDep``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from datatorag.domain.employees import Employee
from datatorag_query_api.keys import ApiKeyStore, KeyInfo
from datatorag_query_api.problems import Problem
from datatorag_query_api.sessions import COOKIE, Session
from datatorag_query_api.signing import InvalidToken

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Reader:
    """Whoever may search and ask: a key's holder or an employee."""

    tenant: str
    key: KeyInfo | None  # None for an employee token
    employee: Employee | None = None  # from the token: whose eligibility applies
    channel: str = "api"  # api, portal or embed (for the question log)


def _bind(request: Request, tenant: str) -> None:
    structlog.contextvars.bind_contextvars(tenant=tenant)  # this thread's log lines
    request.state.tenant = tenant  # the access-log line (a sync dependency runs in a thread)


def caller(
    request: Request,
    key: Annotated[str | None, Depends(APIKeyHeader(name="X-API-Key", auto_error=False))],
) -> KeyInfo:
    """The key behind the request (header or portal session); 401 without a valid one."""
    if len(request.headers.getlist("x-api-key")) > 1:
        raise Problem(400, "Bad request", "send exactly one X-API-Key header")
    keys: ApiKeyStore = request.app.state.services.keys
    info = keys.authenticate(key) if key else _session_key(request)
    if info is None:
        raise Problem(401, "Unauthorized", "send a valid API key in the X-API-Key header")
    _bind(request, info.tenant)
    return info


def _session_key(request: Request) -> KeyInfo | None:
    session: Session | None = request.app.state.services.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        return None
    if request.method not in SAFE_METHODS and not session.csrf_matches(
        request.headers.get("x-csrf-token")
    ):
        raise Problem(403, "Forbidden", "send the portal's CSRF token in X-CSRF-Token")
    request.state.portal = True
    return session.key


Caller = Annotated[KeyInfo, Depends(caller)]


def admin_caller(who: Caller) -> KeyInfo:
    """An admin key's caller; 403 for a query key (search and ask only)."""
    if not who.is_admin:
        raise Problem(
            403, "Forbidden", "this route needs an admin API key; this key may only query"
        )
    return who


AdminCaller = Annotated[KeyInfo, Depends(admin_caller)]


def reader(
    request: Request,
    key: Annotated[str | None, Depends(APIKeyHeader(name="X-API-Key", auto_error=False))],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))],
) -> Reader:
    """A key holder (header or session) or an employee token; 401 otherwise."""
    if bearer is not None and not key:
        try:
            claims = request.app.state.services.signing.verify(bearer.credentials)
        except InvalidToken as err:
            raise Problem(401, "Unauthorized", str(err)) from err
        _bind(request, claims.tenant)
        return Reader(claims.tenant, None, claims.employee, "embed")
    info = caller(request, key)
    channel = "portal" if getattr(request.state, "portal", False) else "api"
    return Reader(info.tenant, info, None, channel)


ReaderDep = Annotated[Reader, Depends(reader)]
