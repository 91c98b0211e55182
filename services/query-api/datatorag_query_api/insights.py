"""What employees asked and what admins did: analytics and the audit log over a period."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BeforeValidator

from datatorag.domain.activity import AdminAction, AnswerRecord, entry_to_json
from datatorag.usecases.analytics import Analytics, summarise, to_csv
from datatorag_query_api import problems
from datatorag_query_api.auth import AdminCaller

DEFAULT_DAYS = 30

router = APIRouter(tags=["analytics"], responses=problems.declared(401, 403, 422))


class CsvResponse(PlainTextResponse):
    media_type = "text/csv"


ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_day(value: object) -> object:
    """Only YYYY-MM-DD: pydantic would read "0" as a Unix time, which no caller means."""
    if isinstance(value, str) and not ISO_DAY.fullmatch(value):
        raise ValueError("a day is written YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_iso_day)]
Since = Annotated[Day | None, Query(description="first day (UTC), default 30 days ago")]
Until = Annotated[Day | None, Query(description="last day (UTC, included), default today")]


def period(
    since: date | None, until: date | None, retention: timedelta
) -> tuple[datetime, datetime]:
    """``[since 00:00, until+1 00:00)`` in UTC, starting no earlier than the retention window
    (nothing older is kept, so the days listed stay few); ``since`` after ``until`` is empty."""
    today = datetime.now(UTC).date()
    last = min(until or today, today)  # nothing is logged ahead of today
    oldest = today - timedelta(days=retention.days)  # nothing older is kept
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    if last < oldest:
        return end, end
    first = max(since or last - timedelta(days=DEFAULT_DAYS - 1), oldest)
    return min(datetime.combine(first, time(), UTC), end), end


def analytics_for(
    request: Request, tenant: str, since: date | None, until: date | None
) -> Analytics:
    start, end = period(since, until, request.app.state.services.activity.retention)
    log = request.app.state.services.activity.log
    return summarise(log.answers(tenant, start, end), log.feedback(tenant, start, end), start, end)


@router.get("/v1/analytics")
def analytics(
    request: Request, who: AdminCaller, since: Since = None, until: Until = None
) -> dict[str, Any]:
    """Questions per day, answered vs abstained, top questions, unanswered questions grouped
    (content gaps), feedback, most-cited documents and p95 latency of answers."""
    result = analytics_for(request, who.tenant, since, until)
    body = asdict(result)
    body.pop("questions")
    body.update(total=result.total, helpful_ratio=result.helpful_ratio)
    return body


@router.get("/v1/analytics.csv", response_class=CsvResponse)
def analytics_csv(
    request: Request, who: AdminCaller, since: Since = None, until: Until = None
) -> CsvResponse:
    """The period's question log as CSV (one row per answer, with its feedback)."""
    start, end = period(since, until, request.app.state.services.activity.retention)
    log = request.app.state.services.activity.log
    feedback = log.feedback(who.tenant, start, end)
    result = summarise(log.answers(who.tenant, start, end), feedback, start, end)
    name = f"datatorag-questions-{start:%Y-%m-%d}-{end - timedelta(days=1):%Y-%m-%d}.csv"
    return CsvResponse(
        to_csv(result, feedback),
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def audit_entries(
    request: Request, tenant: str, since: date | None, until: date | None
) -> tuple[list[AdminAction], list[AnswerRecord]]:
    start, end = period(since, until, request.app.state.services.activity.retention)
    log = request.app.state.services.activity.log
    return log.admin_actions(tenant, start, end), log.answers(tenant, start, end)


@router.get("/v1/audit")
def audit(
    request: Request, who: AdminCaller, since: Since = None, until: Until = None
) -> dict[str, Any]:
    """Every admin action (who, what, when) and every answer (question, abstained, the document
    versions it cited, latency) in the period, oldest first."""
    actions, answers = audit_entries(request, who.tenant, since, until)
    return {
        "admin_actions": [entry_to_json(a) for a in actions],
        "answers": [entry_to_json(a) for a in answers],
    }
