"""What /v1/query returns beside the text: quote offsets into the passage, and a confidence."""

from __future__ import annotations

import pytest

from datatorag.adapters.generators.extractive import ExtractiveGenerator
from datatorag.domain.models import SearchHit
from datatorag.ports import AnswerSentence
from datatorag.usecases.answers import compose

pytestmark = pytest.mark.unit

HIT = SearchHit(
    chunk_id="pto:v1:0",
    doc_id="pto",
    title="PTO",
    source_uri="file:///pto.pdf",
    pages=[2],
    heading="Accrual",
    text="Accrual\nFull-time employees accrue 15 days of PTO per year. Up to 5 days carry over.",
    score=0.9,
)


def test_quotes_carry_their_offsets_in_the_passage() -> None:
    answer = ExtractiveGenerator().generate("How many PTO days carry over?", [HIT])
    composed = compose(answer.sentences, [HIT], answer.confidence or 0.0)
    assert composed.citations
    for citation in composed.citations:
        assert citation.chunk_id == HIT.chunk_id
        assert citation.start is not None and citation.end is not None
        assert HIT.text[citation.start : citation.end] == citation.quote
    assert 0.0 < composed.confidence <= 1.0


def test_a_quote_not_in_the_passage_has_no_offsets() -> None:
    sentence = AnswerSentence("Fifteen days a year.", (0,), ("fifteen days",))
    (citation,) = compose([sentence], [HIT], 0.5).citations
    assert (citation.start, citation.end) == (None, None)
