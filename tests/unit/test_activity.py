"""The question log's privacy rules and the analytics computed from it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from datatorag.domain.activity import (
    AnswerRecord,
    CitedVersion,
    Feedback,
    employee_hash,
    mask_personal_data,
)
from datatorag.usecases.analytics import group_gaps, percentile, summarise, to_csv

pytestmark = pytest.mark.unit
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("I am jane.doe+hr@acme.co.uk, can I", "I am [email], can I"),
        ("call me on +44 20 7946 0958 please", "call me on [phone] please"),
        ("my number is (555) 123-4567", "my number is [phone]"),
        ("SSN 123-45-6789 for payroll", "SSN [national id] for payroll"),
        ("NI number QQ 12 34 56 C here", "NI number [national id] here"),
    ],
)
def test_personal_data_is_masked(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "How many days of leave do I get in 2026?",
        "Is the 401(k) match 4% or 6%?",
        "What is policy 12.3.1 about?",
        "Can I claim $1,500 for a laptop?",
    ],
)
def test_ordinary_numbers_stay(text: str) -> None:
    assert mask_personal_data(text) == text


def test_employee_hash_is_keyed_and_per_tenant() -> None:
    a = employee_hash(b"k1", "acme", "E42")
    assert a == employee_hash(b"k1", "acme", "E42")
    assert a != employee_hash(b"k2", "acme", "E42")
    assert a != employee_hash(b"k1", "globex", "E42")
    assert "E42" not in a


def _answer(
    n: int, question: str, abstained: bool, at: datetime = T0, **kw: object
) -> AnswerRecord:
    return AnswerRecord(f"a{n}", "acme", at, question, abstained, 10.0 * n, **kw)  # type: ignore[arg-type]


def test_summary_counts_days_feedback_citations_and_p95() -> None:
    cited = (CitedVersion("d1", "v1", "Leave policy"),)
    answers = [
        _answer(1, "How much parental leave?", False, cited=cited),
        _answer(2, "how much parental leave", False, T0 + timedelta(days=1), cited=cited),
        _answer(3, "Is there a pet insurance benefit?", True, T0 + timedelta(days=1)),
    ]
    feedback = [Feedback("a1", "acme", T0, True, "clear"), Feedback("a3", "acme", T0, False)]
    since = datetime(2026, 12, 1, tzinfo=UTC)
    summary = summarise(answers, feedback, since, since + timedelta(days=3))
    assert [(d.answered, d.abstained) for d in summary.days] == [(1, 0), (1, 1), (0, 0)]
    assert summary.top_questions[0] == ("how much parental leave?", 2)
    assert [g.question for g in summary.gaps] == ["is there a pet insurance benefit?"]
    assert (summary.helpful, summary.unhelpful, summary.helpful_ratio) == (1, 1, 0.5)
    assert [c[2] for c in summary.comments] == ["clear"]
    assert summary.most_cited == [("d1", "Leave policy", 2)]
    assert summary.p95_latency_ms == 30.0


def test_gaps_group_rephrasings_and_keep_topics_apart() -> None:
    gaps = group_gaps(
        [
            "Do we get pet insurance?",
            "Is pet insurance offered?",
            "pet insurance for dogs",
            "What is the sabbatical policy?",
        ]
    )
    assert [g.count for g in gaps] == [3, 1]
    assert "pet insurance" in gaps[0].question
    assert "sabbatical" in gaps[1].question


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 95) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([float(n) for n in range(1, 101)], 95) == 95.0


def test_csv_export_neutralises_formulas() -> None:
    answers = [_answer(1, '=HYPERLINK("http://evil")', False)]
    feedback = [Feedback("a1", "acme", T0, False, "+cmd")]
    since = datetime(2026, 12, 1, tzinfo=UTC)
    rows = list(
        csv.reader(
            io.StringIO(
                to_csv(summarise(answers, feedback, since, since + timedelta(days=1)), feedback)
            )
        )
    )
    assert rows[0][:3] == ["time", "question", "abstained"]
    assert rows[1][1].startswith("'=")
    assert rows[1][5:] == ["not helpful", "'+cmd"]
