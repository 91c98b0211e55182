import pytest

from datatorag_processor.extract.model import Block, ExtractedDocument
from datatorag_processor.metadata import derive

pytestmark = pytest.mark.unit


def doc(*texts: str, headings: tuple[str, ...] = ()) -> ExtractedDocument:
    blocks = [Block("heading", h, level=2) for h in headings]
    blocks += [Block("paragraph", t) for t in texts]
    return ExtractedDocument(
        title=None, blocks=tuple(blocks), page_count=1, media_type="text/plain"
    )


def test_a_stated_effective_date_and_scope_are_found():
    found = derive(
        doc(
            "Effective date: March 1, 2024.", "This policy applies to full-time US-based employees."
        ),
        "Parental leave",
    )
    assert found == {
        "document_type": "leave",
        "effective_date": "2024-03-01",
        "countries": ["US"],
        "employment_types": ["full-time"],
    }


def test_iso_and_last_updated_dates():
    assert derive(doc("Last updated 2023-11-05"), "x")["effective_date"] == "2023-11-05"
    assert derive(doc("Revised on 5 November 2023"), "x")["effective_date"] == "2023-11-05"


def test_nothing_is_guessed_when_the_document_says_nothing():
    assert derive(doc("Be kind to each other."), "Pronouns") == {}
    assert "effective_date" not in derive(doc("Updated: sometime soon"), "x")


def test_the_title_decides_the_type_before_headings():
    assert derive(doc("text", headings=("Receipts",)), "Travel policy")["document_type"] == "travel"
    assert derive(doc("text", headings=("Receipts",)), "Notes")["document_type"] == "expenses"
