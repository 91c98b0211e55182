"""ActivityLog as one small JSON object per entry in the blob store (S3 on AWS).

Objects sit under ``tenants/<tenant>/activity/<kind>/<YYYY-MM-DD>/``, so a period is read by
listing its days and retention deletes whole days (an S3 lifecycle rule on the same prefix does
it too). Writing one object per entry needs no read-modify-write, so any number of API tasks
append at once. ``answer-ids/<answer id>.json`` records each answer's day, so feedback can check
that the answer exists for that tenant.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from datatorag.domain.activity import (
    AdminAction,
    AnswerRecord,
    Entry,
    Feedback,
    admin_action_from_json,
    answer_from_json,
    entry_to_json,
    feedback_from_json,
)
from datatorag.domain.blob_keys import activity_prefix
from datatorag.domain.errors import BlobNotFound
from datatorag.domain.tenants import validate_tenant
from datatorag.ports import BlobStore

_T = TypeVar("_T")
_KINDS = ("answers", "feedback", "admin")
MAX_DAYS_LISTED = 400


class BlobActivityLog:
    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    @staticmethod
    def _root(tenant: str) -> str:
        return activity_prefix(validate_tenant(tenant))

    def _put(self, kind: str, entry: Entry) -> None:
        at = entry.at.astimezone(UTC)
        name = f"{at:%Y-%m-%d}/{at:%H%M%S%f}-{uuid.uuid4().hex[:8]}.json"
        self.blobs.put(f"{self._root(entry.tenant)}{kind}/{name}", _encode(entry))

    def record_answer(self, entry: AnswerRecord) -> None:
        self._put("answers", entry)
        marker = json.dumps({"at": entry.at.isoformat()}).encode()
        self.blobs.put(self._answer_marker(entry.tenant, entry.answer_id), marker)

    def _answer_marker(self, tenant: str, answer_id: str) -> str:
        if not answer_id.isalnum():
            raise ValueError("answer ids are letters and digits")
        return f"{self._root(tenant)}answer-ids/{answer_id}.json"

    def record_feedback(self, entry: Feedback) -> bool:
        try:
            self.blobs.get(self._answer_marker(entry.tenant, entry.answer_id))
        except (BlobNotFound, ValueError):
            return False
        self._put("feedback", entry)
        return True

    def record_admin(self, entry: AdminAction) -> None:
        self._put("admin", entry)

    def _read(
        self,
        kind: str,
        tenant: str,
        since: datetime,
        until: datetime,
        decode: Callable[[dict[str, Any]], _T],
    ) -> list[_T]:
        entries = []
        for key in self._keys(f"{self._root(tenant)}{kind}/", since, until):
            if since <= _key_time(key) < until:
                try:
                    entries.append(decode(json.loads(self.blobs.get(key))))
                except BlobNotFound:  # purged while we listed
                    continue
        return entries

    def _keys(self, prefix: str, since: datetime, until: datetime) -> Iterator[str]:
        """A period's keys: day by day (API periods are at most a year), or the whole prefix
        for longer spans (retention keeps it small)."""
        if until - since > timedelta(days=MAX_DAYS_LISTED):
            yield from self.blobs.list(prefix)
            return
        for day in _days(since, until):
            yield from self.blobs.list(f"{prefix}{day:%Y-%m-%d}/")

    def answers(self, tenant: str, since: datetime, until: datetime) -> list[AnswerRecord]:
        return self._read("answers", tenant, since, until, answer_from_json)

    def feedback(self, tenant: str, since: datetime, until: datetime) -> list[Feedback]:
        return self._read("feedback", tenant, since, until, feedback_from_json)

    def admin_actions(self, tenant: str, since: datetime, until: datetime) -> list[AdminAction]:
        return self._read("admin", tenant, since, until, admin_action_from_json)

    def purge(self, tenant: str, before: datetime) -> int:
        """Deletes whole days before ``before``'s day, then the entries of that day before it."""
        deleted = 0
        root = self._root(tenant)
        for kind in _KINDS:
            for key in list(self.blobs.list(f"{root}{kind}/")):
                if _key_time(key) < before:
                    self.blobs.delete(key)
                    deleted += 1
        for key in list(self.blobs.list(f"{root}answer-ids/")):
            try:
                at = datetime.fromisoformat(json.loads(self.blobs.get(key))["at"])
            except BlobNotFound:
                continue
            if at < before:
                self.blobs.delete(key)
        return deleted


def _encode(entry: Entry) -> bytes:
    return json.dumps(entry_to_json(entry)).encode()


def _days(since: datetime, until: datetime) -> Iterator[datetime]:
    day = since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    while day < until:
        yield day
        day += timedelta(days=1)


def _key_time(key: str) -> datetime:
    """The time encoded in an entry's key: ``.../<YYYY-MM-DD>/<HHMMSSffffff>-<id>.json``."""
    day, name = key.rsplit("/", 2)[-2:]
    return datetime.strptime(f"{day} {name[:12]}", "%Y-%m-%d %H%M%S%f").replace(tzinfo=UTC)
