"""``POST /v1/webhooks/bamboohr/{source_id}``: BambooHR's employee webhooks update the directory.

BambooHR signs each delivery with the webhook's private key: ``X-BambooHR-Signature`` is the
hex HMAC-SHA256 of the raw body followed by the ``X-BambooHR-Timestamp`` header's value
(https://documentation.bamboohr.com/docs/webhooks, "Security"). The caller sends no API key:
the signature is the authentication, checked in constant time, and a delivery whose timestamp
is further than ``webhook_max_age_s`` from now, or that was already received (same signature),
is refused as a replay. Unknown sources and bad signatures get the same 401.

Payload (the same page): ``{"employees": [{"id": "123", "action": "Updated", "changedFields":
[...], "fields": {"Country": "United Kingdom", ...}}]}``; fields are named as BambooHR names them
in English ("Employment Status") or by API field id ("employmentHistoryStatus"), and a value may
come as itself or as ``{"value": ...}``. Only ``Employee``'s fields are kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import threading
import time
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from datatorag.domain.applicability import normalise_country
from datatorag.domain.employees import Employee
from datatorag.ports import EmployeeDirectory
from datatorag.usecases.sources import SourceCatalog
from datatorag_query_api import problems
from datatorag_query_api.problems import Problem

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

MAX_BODY_BYTES = 1024 * 1024
_UNKNOWN_KEY = "no webhook key: compared against so unknown sources cost the same"
# BambooHR field name (English) or API field id -> Employee field.
FIELDS = {
    "country": "country",
    "state": "region",
    "province": "region",
    "department": "department",
    "location": "location",
    "work email": "email",
    "workemail": "email",
    "employment status": "employment_type",
    "employmenthistorystatus": "employment_type",
    "employmentstatus": "employment_type",
}
EMPLOYMENT_TYPES = {
    "full-time": "full-time",
    "full time": "full-time",
    "part-time": "part-time",
    "part time": "part-time",
    "contractor": "contractor",
    "contract": "contractor",
    "intern": "intern",
}


class WebhookApplied(BaseModel):
    updated: int
    removed: int


class ReplayGuard:
    """Signatures seen within the replay window, per process (a replay to another process is
    still bounded by the window, and re-applies a state the directory already had)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, signature: str, window_s: float) -> bool:
        now = time.monotonic()
        with self._lock:
            self._seen = {s: t for s, t in self._seen.items() if t > now}
            if signature in self._seen:
                return False
            self._seen[signature] = now + 2 * window_s
            return True


def signature_of(key: str, body: bytes, timestamp: str) -> str:
    return hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


def timestamp_seconds(value: str) -> float | None:
    """Unix seconds, or an ISO 8601 time (both are seen in deliveries)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@router.post(
    "/bamboohr/{source_id}",
    # 400: a signed body that is not a BambooHR employee payload; 401: unknown source, bad or
    # missing signature, or a replay; 413: a body over 1 MiB.
    responses=problems.declared(400, 401, 413, 422),
)
async def bamboohr_webhook(source_id: str, request: Request) -> WebhookApplied:
    """Apply a BambooHR employee webhook to the tenant's employee directory at once."""
    services = request.app.state.services
    catalog: SourceCatalog = services.sources
    body = await _read_limited(request)
    target = await run_in_threadpool(catalog.webhook_target, source_id)
    tenant = _verify(request, body, target, services.webhook_max_age_s)
    try:
        changes = _changes(json.loads(body))
    except (ValueError, TypeError, AttributeError) as err:
        raise Problem(400, "Bad webhook", f"not a BambooHR employee payload: {err}") from err
    return await run_in_threadpool(_apply, services.directory, tenant, changes)


async def _read_limited(request: Request) -> bytes:
    """The body, refused (413) past ``MAX_BODY_BYTES`` without reading the rest."""
    too_large = Problem(413, "Payload too large", "webhook bodies are at most 1 MiB")
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    return bytes(body)


def _verify(request: Request, body: bytes, target: tuple[str, str] | None, max_age_s: float) -> str:
    signature = request.headers.get("x-bamboohr-signature", "").strip().lower()
    timestamp = request.headers.get("x-bamboohr-timestamp", "").strip()
    expected = signature_of(target[1] if target else _UNKNOWN_KEY, body, timestamp)
    if not (hmac.compare_digest(expected, signature) and target and signature and timestamp):
        raise Problem(401, "Unauthorized", "unknown source, or a missing or wrong signature")
    sent = timestamp_seconds(timestamp)
    if sent is None or abs(time.time() - sent) > max_age_s:
        raise Problem(401, "Unauthorized", "the delivery's timestamp is too old: a replay?")
    guard: ReplayGuard = request.app.state.webhook_replays
    if not guard.first_time(signature, max_age_s):
        raise Problem(401, "Unauthorized", "this delivery was already received")
    return target[0]


def _changes(payload: Any) -> list[tuple[str, str, dict[str, str | None]]]:
    """(employee id, action, Employee fields given) per employee of the payload."""
    changes = []
    for entry in payload["employees"]:
        employee_id = str(entry["id"]).strip()
        if not employee_id:
            raise ValueError("an employee without an id")
        fields: dict[str, str | None] = {}
        for name, raw in (entry.get("fields") or {}).items():
            field = FIELDS.get(str(name).strip().lower())
            if field is not None:
                fields[field] = _value(field, raw)
        changes.append((employee_id, str(entry.get("action") or "Updated").lower(), fields))
    return changes


def _value(field: str, raw: Any) -> str | None:
    value = raw.get("value") if isinstance(raw, dict) else raw
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    if field == "country":
        return normalise_country(text)
    if field == "region":
        return text.upper()
    if field == "employment_type":
        return EMPLOYMENT_TYPES.get(text.lower())
    return text


def _apply(
    directory: EmployeeDirectory,
    tenant: str,
    changes: list[tuple[str, str, dict[str, str | None]]],
) -> WebhookApplied:
    updated = removed = 0
    for employee_id, action, fields in changes:
        if action == "deleted":
            directory.remove(tenant, employee_id)
            removed += 1
            continue
        known = directory.get(tenant, employee_id) or Employee(id=employee_id)
        merged: dict[str, Any] = {**dataclasses.asdict(known), **fields}  # what it left out stays
        directory.put(tenant, Employee(**merged))
        updated += 1
    return WebhookApplied(updated=updated, removed=removed)
