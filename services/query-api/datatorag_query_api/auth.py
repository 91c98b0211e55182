"""Who is calling: the tenant and role behind the request's ``X-API-Key``.

``Caller`` admits any valid key; ``AdminCaller`` only an admin key (a query key gets a 403).
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from datatorag_query_api.keys import ApiKeyStore, KeyInfo
from datatorag_query_api.problems import Problem


def caller(
    request: Request,
    key: Annotated[str | None, Depends(APIKeyHeader(name="X-API-Key", auto_error=False))],
) -> KeyInfo:
    """The tenant behind the request's API key; 401 without a valid one."""
    if len(request.headers.getlist("x-api-key")) > 1:
        raise Problem(400, "Bad request", "send exactly one X-API-Key header")
    keys: ApiKeyStore = request.app.state.services.keys
    info = keys.authenticate(key) if key else None
    if info is None:
        raise Problem(401, "Unauthorized", "send a valid API key in the X-API-Key header")
    structlog.contextvars.bind_contextvars(tenant=info.tenant)  # this thread's log lines
    request.state.tenant = info.tenant  # the access-log line (a sync dependency runs in a thread)
    return info


Caller = Annotated[KeyInfo, Depends(caller)]


def admin_caller(who: Caller) -> KeyInfo:
    """An admin key's caller; 403 for a query key (search and ask only)."""
    if not who.is_admin:
        raise Problem(
            403, "Forbidden", "this route needs an admin API key; this key may only query"
        )
    return who


AdminCaller = Annotated[KeyInfo, Depends(admin_caller)]
