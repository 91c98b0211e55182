"""What employees asked and what admins did: analytics and the audit log over a period."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from datatorag.domain.activity import AdminAction, AnswerRecord, entry_to_json
from datatorag.usecases.analytics import Analytics, summarise, to_csv
from datatorag_query_api import problems
from datatorag_query_api.auth import AdminCaller

DEFAULT_DAYS = 30

router = APIRouter(tags=["analytics"], responses=problems.declared(401, 403, 422))


class CsvResponse(PlainTextResponse):
    media_type = "text/csv"


Since = Annotated[date | None, Query(description="first day (UTC), default 30 days ago")]
Until = Annotated[date | None, Query(description="last day (UTC, included), default today")]


def period(
    since: date | None, until: date | None, retention: timedelta
) -> tuple[datetime, datetime]:
    """``[since 00:00, until+1 00:00)`` in UTC, starting no earlier than the retention window
    (nothing older is kept, so the days listed stay few); ``since`` after ``until`` is empty."""
    today = datetime.now(UTC).date()
    last = until or today
    first = since or last - timedelta(days=DEFAULT_DAYS - 1)
    first = max(first, today - timedelta(days=retention.days))
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
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
