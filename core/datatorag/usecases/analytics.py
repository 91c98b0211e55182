"""What employees ask: the analytics an HR admin reads over a period, from the question log."""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from datatorag.domain.activity import AnswerRecord, Feedback

TOP = 10
# Words that carry no topic: two questions about the same gap differ mostly in these.
_FILLER = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "can",
        "do",
        "does",
        "for",
        "from",
        "get",
        "have",
        "how",
        "i",
        "if",
        "in",
        "is",
        "it",
        "many",
        "may",
        "me",
        "much",
        "my",
        "of",
        "on",
        "or",
        "our",
        "should",
        "the",
        "there",
        "this",
        "to",
        "we",
        "what",
        "when",
        "where",
        "which",
        "who",
        "will",
        "with",
        "would",
        "you",
        "your",
        "am",
        "was",
        "were",
        "any",
        "about",
        "after",
        "before",
        "than",
        "that",
        "those",
        "these",
        "into",
        "out",
        "up",
    }
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class Day:
    day: date
    answered: int
    abstained: int


@dataclass(frozen=True)
class Gap:
    """Unanswered questions about one topic: content HR should write."""

    question: str  # the most frequent phrasing
    count: int
    examples: tuple[str, ...]


@dataclass
class Analytics:
    since: datetime
    until: datetime
    days: list[Day]
    answered: int
    abstained: int
    top_questions: list[tuple[str, int]]
    gaps: list[Gap]
    helpful: int
    unhelpful: int
    comments: list[tuple[datetime, bool, str, str]]  # at, helpful, comment, question
    most_cited: list[tuple[str, str, int]]  # doc_id, title, answers citing it
    p95_latency_ms: float | None
    questions: list[AnswerRecord] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.answered + self.abstained

    @property
    def helpful_ratio(self) -> float | None:
        rated = self.helpful + self.unhelpful
        return self.helpful / rated if rated else None


def summarise(
    answers: list[AnswerRecord], feedback: list[Feedback], since: datetime, until: datetime
) -> Analytics:
    abstained = [a for a in answers if a.abstained]
    by_id = {a.answer_id: a for a in answers}
    cited: Counter[tuple[str, str]] = Counter()
    for a in answers:
        cited.update({(c.doc_id, c.title) for c in a.cited})
    return Analytics(
        since=since,
        until=until,
        days=_days(answers, since, until),
        answered=len(answers) - len(abstained),
        abstained=len(abstained),
        top_questions=Counter(_normal(a.question) for a in answers).most_common(TOP),
        gaps=group_gaps([a.question for a in abstained]),
        helpful=sum(f.helpful for f in feedback),
        unhelpful=sum(not f.helpful for f in feedback),
        comments=[
            (
                f.at,
                f.helpful,
                f.comment,
                by_id[f.answer_id].question if f.answer_id in by_id else "",
            )
            for f in feedback
            if f.comment and f.answer_id in by_id
        ],
        most_cited=[(d, t, n) for (d, t), n in cited.most_common(TOP)],
        p95_latency_ms=percentile([a.latency_ms for a in answers], 95),
        questions=answers,
    )


def group_gaps(questions: list[str], min_overlap: float = 0.5) -> list[Gap]:
    """Questions grouped by their content words (Jaccard >= ``min_overlap``), largest first."""
    groups: list[tuple[set[str], list[str]]] = []
    for question in questions:
        terms = content_terms(question)
        best = max(groups, key=lambda g: _jaccard(terms, g[0]), default=None)
        if best is not None and _jaccard(terms, best[0]) >= min_overlap:
            best[0].update(terms)
            best[1].append(question)
        else:
            groups.append((set(terms), [question]))
    gaps = []
    for _, members in groups:
        phrasing = Counter(_normal(q) for q in members).most_common()
        gaps.append(Gap(phrasing[0][0], len(members), tuple(p for p, _ in phrasing[:5])))
    return sorted(gaps, key=lambda g: (-g.count, g.question))


def content_terms(text: str) -> set[str]:
    words = (w.removesuffix("'s") for w in _WORD.findall(text.lower()))
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in _FILLER}


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (no interpolation), or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def to_csv(analytics: Analytics, feedback: list[Feedback]) -> str:
    """The period's question log, one row per answer, for a spreadsheet."""
    rated = {f.answer_id: f for f in feedback}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time", "question", "abstained", "latency_ms", "cited", "feedback", "comment"])
    for a in analytics.questions:
        f = rated.get(a.answer_id)
        writer.writerow(
            [
                a.at.isoformat(),
                _safe_cell(a.question),
                a.abstained,
                round(a.latency_ms, 1),
                "; ".join(f"{c.title} ({c.version})" for c in a.cited),
                "" if f is None else ("helpful" if f.helpful else "not helpful"),
                "" if f is None else _safe_cell(f.comment),
            ]
        )
    return out.getvalue()


def _safe_cell(text: str) -> str:
    """Employees' words opened in a spreadsheet must not run as formulas (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _days(answers: list[AnswerRecord], since: datetime, until: datetime) -> list[Day]:
    counts: Counter[tuple[date, bool]] = Counter((a.at.date(), a.abstained) for a in answers)
    days, day = [], since.date()
    while day <= (until - timedelta(microseconds=1)).date():
        days.append(Day(day, counts[(day, False)], counts[(day, True)]))
        day += timedelta(days=1)
    return days


def _normal(question: str) -> str:
    return " ".join(question.lower().split()).rstrip("?!. ") + "?"


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0
