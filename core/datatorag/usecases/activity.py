"""Recording what the assistant answered and what admins did, with personal data minimised."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from datatorag.domain.activity import (
    MAX_COMMENT_CHARS,
    AdminAction,
    AnswerRecord,
    CitedVersion,
    Feedback,
    employee_hash,
    mask_personal_data,
)
from datatorag.domain.models import utcnow
from datatorag.log import get_logger
from datatorag.ports import ActivityLog
from datatorag.usecases.answers import Answer

log = get_logger(__name__)
PURGE_EVERY_S = 3600.0  # retention runs at most hourly per tenant and process


class ActivityRecorder:
    def __init__(
        self,
        activity: ActivityLog,
        employee_key: bytes,
        retention: timedelta,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.log = activity
        self.employee_key = employee_key
        self.retention = retention
        self.clock = clock
        self._purged: dict[str, float] = {}
        self._lock = threading.Lock()

    def answered(
        self,
        tenant: str,
        question: str,
        answer: Answer,
        latency_ms: float,
        *,
        employee_id: str | None = None,
        channel: str = "api",
    ) -> str:
        """Log one answer; returns its id (feedback refers to it)."""
        answer_id = uuid.uuid4().hex
        entry = AnswerRecord(
            answer_id=answer_id,
            tenant=tenant,
            at=self.clock(),
            question=mask_personal_data(question),
            abstained=answer.abstained,
            latency_ms=latency_ms,
            cited=cited_versions(answer),
            employee=employee_hash(self.employee_key, tenant, employee_id) if employee_id else None,
            channel=channel,
        )
        self.log.record_answer(entry)
        self._retain(tenant)
        return answer_id

    def feedback(self, tenant: str, answer_id: str, helpful: bool, comment: str = "") -> bool:
        comment = mask_personal_data(comment.strip())[:MAX_COMMENT_CHARS]
        return self.log.record_feedback(Feedback(answer_id, tenant, self.clock(), helpful, comment))

    def admin(self, tenant: str, actor: str, action: str, target: str = "", **details: str) -> None:
        self.log.record_admin(AdminAction(tenant, self.clock(), actor, action, target, details))

    def _retain(self, tenant: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._purged.get(tenant, -PURGE_EVERY_S) < PURGE_EVERY_S:
                return
            self._purged[tenant] = now
        deleted = self.log.purge(tenant, self.clock() - self.retention)
        if deleted:
            log.info("activity.purged", tenant=tenant, entries=deleted)


def cited_versions(answer: Answer) -> tuple[CitedVersion, ...]:
    """Which version of which document each citation quoted: the chunk id carries the version
    (``<doc_id>:<version[:12]>:<ordinal>``)."""
    cited_docs = {c.doc_id for c in answer.citations}
    versions: dict[str, CitedVersion] = {}
    for hit in answer.hits:
        if hit.doc_id in cited_docs and hit.doc_id not in versions:
            parts = hit.chunk_id.rsplit(":", 2)
            version = parts[1] if len(parts) == 3 else ""
            versions[hit.doc_id] = CitedVersion(hit.doc_id, version, hit.title)
    return tuple(versions[d] for d in dict.fromkeys(c.doc_id for c in answer.citations))
