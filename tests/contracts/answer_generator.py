"""Behaviour every AnswerGenerator adapter must show.

Subclass ``AnswerGeneratorContract`` in a ``Test*`` class and provide an ``answer_generator``
fixture. Generative adapters run it against a fake endpoint scripted to answer like a careful
model (``tests.fixtures.llm_servers.well_behaved_model``).

The rule under test: every sentence cites at least one passage it was given (by position) with
a quote that occurs in that passage, the answer rests on the passage that holds the fact, and
passages that do not answer the question give an abstention.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import pytest

from datatorag.domain.models import SearchHit
from datatorag.ports import AnswerGenerator, GeneratedAnswer


def _hit(chunk_id: str, title: str, heading: str, text: str, score: float) -> SearchHit:
    return SearchHit(
        chunk_id=chunk_id,
        doc_id=f"doc_{chunk_id}",
        title=title,
        source_uri=f"sftp://hr.example.com/policies/{chunk_id}.pdf",
        pages=[1],
        heading=heading,
        text=text,
        score=score,
    )


HR_PASSAGES: tuple[SearchHit, ...] = (
    _hit(
        "pto",
        "Paid Time Off Policy",
        "Accrual and carry-over",
        "Full-time employees accrue 15 days of paid time off (PTO) per calendar year, earned at "
        "1.25 days per month of service. Up to 5 unused PTO days carry over into the next year; "
        "any balance above that is forfeited on January 1.\n"
        "Requests for more than five consecutive business days must be submitted to your manager "
        "at least two weeks in advance.",
        0.91,
    ),
    _hit(
        "parental",
        "Parental Leave Policy",
        "Eligibility and duration",
        "Employees with at least 6 months of service are eligible for paid parental leave. "
        "Birthing parents receive 16 weeks of fully paid leave, and non-birthing parents receive "
        "12 weeks of fully paid leave.\n"
        "Leave must be taken within 12 months of the birth or adoption of a child and may be "
        "split into at most two blocks.",
        0.88,
    ),
    _hit(
        "retirement",
        "Retirement Benefits",
        "401(k) plan",
        "The company matches 100% of your contributions to the 401(k) plan, up to 4% of your "
        "base salary. Matching contributions vest immediately, i.e. they are yours from the first "
        "paycheck.\n"
        "You can change your contribution rate at any time in the benefits portal.",
        0.75,
    ),
    _hit(
        "expenses",
        "Travel and Expense Policy",
        "Receipts",
        "Submit expense reports within 30 days of the purchase. Itemized receipts are required "
        "for any expense over $25. Approved reimbursements are paid with the next payroll run.",
        0.62,
    ),
    _hit(
        "holidays",
        "Company Holidays",
        "Observed holidays",
        "The offices are closed on the following holidays:\n"
        "- New Year's Day (January 1)\n"
        "- Independence Day (July 4)\n"
        "- Thanksgiving Day and the day after\n"
        "- Christmas Day (December 25)",
        0.55,
    ),
)

# question, the chunk that holds the answer, a fact the cited quotes must contain
ANSWERABLE = [
    ("How many weeks of paid maternity leave do birthing parents get?", "parental", "16 weeks"),
    ("How many vacation days do I get each year?", "pto", "15 days"),
    ("Does the company match my 401k contributions, and by how much?", "retirement", "4%"),
    ("Do I need a receipt for a $40 expense?", "expenses", "over $25"),
]
UNANSWERABLE = [
    "Is there a dress code for client meetings?",
    "Who approves stock option grants for contractors?",
]


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def assert_grounded(answer: GeneratedAnswer, passages: Sequence[SearchHit]) -> None:
    """Every sentence cites passages it was given, each with a quote found in that passage."""
    assert isinstance(answer, GeneratedAnswer)
    for sentence in answer.sentences:
        assert sentence.text.strip(), "an empty sentence"
        assert len(sentence.sources) >= 1, f"sentence without a source: {sentence.text!r}"
        assert len(sentence.quotes) == len(sentence.sources), "one quote per source"
        for source, quote in zip(sentence.sources, sentence.quotes, strict=True):
            assert isinstance(source, int)
            assert 0 <= source < len(passages), f"source {source} of {len(passages)} passages"
            assert _squash(quote), "an empty quote"
            assert _squash(quote) in _squash(passages[source].text), (
                f"quote {quote!r} is not in passage {source}"
            )


class AnswerGeneratorContract:
    def test_is_an_answer_generator(self, answer_generator: AnswerGenerator) -> None:
        assert isinstance(answer_generator, AnswerGenerator)

    @pytest.mark.parametrize(("question", "chunk_id", "fact"), ANSWERABLE)
    def test_answerable_question_is_answered_from_the_right_passage(
        self, answer_generator: AnswerGenerator, question: str, chunk_id: str, fact: str
    ) -> None:
        passages = list(HR_PASSAGES)
        answer = answer_generator.generate(question, passages)
        assert not answer.abstained, f"abstained on {question!r}"
        assert answer.sentences
        assert_grounded(answer, passages)
        holder = next(i for i, p in enumerate(passages) if p.chunk_id == chunk_id)
        cited = [
            quote
            for sentence in answer.sentences
            for source, quote in zip(sentence.sources, sentence.quotes, strict=True)
            if source == holder
        ]
        assert cited, f"the answer to {question!r} does not cite passage {holder} ({chunk_id})"
        assert any(fact in quote for quote in cited), f"no cited quote states {fact!r}: {cited}"

    def test_sources_follow_the_order_the_passages_were_given(
        self, answer_generator: AnswerGenerator
    ) -> None:
        question, chunk_id, _fact = ANSWERABLE[0]
        for seed in (1, 2, 3):
            passages = list(HR_PASSAGES)
            random.Random(seed).shuffle(passages)
            answer = answer_generator.generate(question, passages)
            assert not answer.abstained
            assert_grounded(answer, passages)
            holder = next(i for i, p in enumerate(passages) if p.chunk_id == chunk_id)
            assert any(holder in s.sources for s in answer.sentences), (
                f"passage order {[p.chunk_id for p in passages]}: {chunk_id} not cited"
            )

    def test_single_passage(self, answer_generator: AnswerGenerator) -> None:
        passages = [HR_PASSAGES[1]]
        answer = answer_generator.generate(ANSWERABLE[0][0], passages)
        assert not answer.abstained
        assert_grounded(answer, passages)
        assert {s for sentence in answer.sentences for s in sentence.sources} == {0}

    @pytest.mark.parametrize("question", UNANSWERABLE)
    def test_unanswerable_question_abstains(
        self, answer_generator: AnswerGenerator, question: str
    ) -> None:
        answer = answer_generator.generate(question, list(HR_PASSAGES))
        assert answer.abstained, f"answered {question!r}: {answer.sentences}"
        assert answer.sentences == ()

    def test_no_passages_abstains(self, answer_generator: AnswerGenerator) -> None:
        answer = answer_generator.generate(ANSWERABLE[0][0], [])
        assert answer.abstained
        assert answer.sentences == ()

    def test_passages_on_another_topic_abstain(self, answer_generator: AnswerGenerator) -> None:
        passages = [HR_PASSAGES[3], HR_PASSAGES[4]]  # expenses and holidays
        answer = answer_generator.generate(ANSWERABLE[0][0], passages)  # parental leave
        assert answer.abstained
        assert answer.sentences == ()

    def test_same_input_same_answer(self, answer_generator: AnswerGenerator) -> None:
        question = ANSWERABLE[1][0]
        first = answer_generator.generate(question, list(HR_PASSAGES))
        second = answer_generator.generate(question, list(HR_PASSAGES))
        assert first == second
