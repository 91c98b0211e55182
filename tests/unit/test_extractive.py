import pytest

from datatorag.adapters.generators.extractive import ExtractiveGenerator
from datatorag.domain.models import SearchHit

pytestmark = pytest.mark.unit


def test_titles_and_headings_inside_a_passage_are_never_the_answer():
    passage = SearchHit(
        chunk_id="d:v:0",
        doc_id="d",
        title="Paid Parental Leave Policy",
        source_uri="file:///p.pdf",
        pages=[1],
        heading="Paid Parental Leave Policy > Eligibility",
        text="Paid Parental Leave Policy\nEligibility\n"
        "Eligible teammates receive 16 weeks of paid parental leave after a birth or adoption.",
        score=1.0,
    )
    answer = ExtractiveGenerator().generate("How many weeks of paid parental leave?", [passage])
    assert not answer.abstained
    texts = [s.text for s in answer.sentences]
    assert texts and all("16 weeks" in t for t in texts)
