"""Behaviour every ActivityLog adapter must show.

Subclass ``ActivityLogContract`` in a ``Test*`` class and provide an ``activity_log`` fixture that
returns an empty log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from datatorag.domain.activity import AdminAction, AnswerRecord, CitedVersion, Feedback
from datatorag.ports import ActivityLog

T0 = datetime(2026, 11, 30, 23, 59, 0, tzinfo=UTC)
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def answer(answer_id: str, tenant: str = "acme", at: datetime = T0, **kw: object) -> AnswerRecord:
    fields: dict[str, object] = {"question": "How much leave?", "abstained": False}
    fields.update(kw)
    return AnswerRecord(answer_id, tenant, at, latency_ms=12.5, **fields)  # type: ignore[arg-type]


class ActivityLogContract:
    def test_it_is_an_activity_log(self, activity_log: ActivityLog) -> None:
        assert isinstance(activity_log, ActivityLog)

    def test_an_answer_reads_back_whole(self, activity_log: ActivityLog) -> None:
        cited = (CitedVersion("d1", "abc123def456", "Leave policy"),)
        entry = answer("a1", cited=cited, employee="h" * 32, channel="embed")
        activity_log.record_answer(entry)
        assert activity_log.answers("acme", *EVER) == [entry]

    def test_reads_are_per_tenant(self, activity_log: ActivityLog) -> None:
        activity_log.record_answer(answer("a1", "acme"))
        activity_log.record_answer(answer("a2", "globex"))
        activity_log.record_admin(AdminAction("globex", T0, "cli", "key.create"))
        assert [a.answer_id for a in activity_log.answers("acme", *EVER)] == ["a1"]
        assert activity_log.admin_actions("acme", *EVER) == []

    def test_a_period_is_half_open_and_spans_days(self, activity_log: ActivityLog) -> None:
        times = [T0 - timedelta(days=2), T0, T0 + timedelta(minutes=2), T0 + timedelta(days=3)]
        for n, at in enumerate(times):
            activity_log.record_answer(answer(f"a{n}", at=at))
        got = activity_log.answers("acme", T0, T0 + timedelta(days=3))
        assert [a.answer_id for a in got] == ["a1", "a2"]

    def test_feedback_needs_an_answer_of_the_same_tenant(self, activity_log: ActivityLog) -> None:
        activity_log.record_answer(answer("a1", "acme"))
        other = Feedback("a1", "globex", T0, helpful=False, comment="spam")
        assert activity_log.record_feedback(other) is False
        assert activity_log.record_feedback(Feedback("nope", "acme", T0, helpful=True)) is False
        mine = Feedback("a1", "acme", T0 + timedelta(seconds=5), helpful=True, comment="clear")
        assert activity_log.record_feedback(mine) is True
        assert activity_log.feedback("acme", *EVER) == [mine]
        assert activity_log.feedback("globex", *EVER) == []

    def test_admin_actions_keep_their_details(self, activity_log: ActivityLog) -> None:
        action = AdminAction("acme", T0, "k1", "document.delete", "d1", {"title": "Old policy"})
        activity_log.record_admin(action)
        assert activity_log.admin_actions("acme", *EVER) == [action]

    def test_purge_deletes_only_older_entries_of_that_tenant(
        self, activity_log: ActivityLog
    ) -> None:
        old, new = T0 - timedelta(days=100), T0
        activity_log.record_answer(answer("a1", at=old))
        activity_log.record_answer(answer("a2", at=new))
        activity_log.record_answer(answer("a3", "globex", at=old))
        activity_log.record_admin(AdminAction("acme", old, "cli", "key.create"))
        assert activity_log.purge("acme", T0 - timedelta(days=90)) == 2
        assert [a.answer_id for a in activity_log.answers("acme", *EVER)] == ["a2"]
        assert activity_log.admin_actions("acme", *EVER) == []
        assert [a.answer_id for a in activity_log.answers("globex", *EVER)] == ["a3"]
        # Feedback on a purged answer has nothing to attach to.
        late = Feedback("a1", "acme", new, helpful=True)
        assert activity_log.record_feedback(late) is False

    @pytest.mark.parametrize("tenant", ["../x", "Acme", ""])
    def test_unsafe_tenants_never_reach_storage(
        self, activity_log: ActivityLog, tenant: str
    ) -> None:
        try:
            activity_log.record_answer(answer("a1", tenant))
        except Exception:
            return
        assert activity_log.answers("acme", *EVER) == []
