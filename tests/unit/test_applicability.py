"""Whom a passage or a document applies to, read from its headings and text."""

from __future__ import annotations

import pytest

from datatorag.domain.applicability import (
    applies_to,
    combine_filters,
    countries_named,
    employee_filters,
    normalise_country,
    section_applicability,
    stated_scope,
)
from datatorag.domain.employees import Employee
from datatorag.domain.filters import DocAttrs, parse_filters

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("In the US, our 401k plan", ["US"]),
        ("U.S. employees and U.K. staff", ["US", "GB"]),
        ("the United Kingdom and Canada", ["GB", "CA"]),
        ("let us know; tell US about it", ["US"]),  # capitals only for codes
        ("let us know", []),
        ("usage of the busy status", []),
        ("UKG is our payroll vendor", []),
        ("", []),
    ],
)
def test_countries_are_named_on_word_boundaries(text: str, expected: list[str]) -> None:
    assert countries_named(text) == expected


def test_the_deepest_heading_that_names_a_country_decides() -> None:
    assert section_applicability("Benefits > Country specific benefits > UK > Pension", "") == {
        "countries": ["GB"]
    }
    assert section_applicability("Benefits > US > 401k", "Unlike the UK plan, ...") == {
        "countries": ["US"]
    }


def test_without_a_heading_a_sentence_that_opens_on_a_place_decides() -> None:
    text = "Health care\nIn the US, you'll enroll in benefits through BambooHR."
    assert section_applicability("Benefits", text) == {"countries": ["US"]}
    assert section_applicability("Benefits", "UK-based employees get 25 days.") == {
        "countries": ["GB"]
    }


def test_a_passing_mention_states_nothing() -> None:
    text = "We do our best to offer the same benefits everywhere, from the US to Germany.\nUS"
    assert section_applicability("Benefits > Learning", text) == {}
    assert section_applicability("Time off", "Take the time you need.") == {}


def test_a_document_states_its_scope_in_its_title_or_a_scope_sentence() -> None:
    assert stated_scope("UK pension scheme", "Contributions...") == {"countries": ["GB"]}
    opening = "Effective 2024. This policy applies to full-time US-based employees."
    assert stated_scope("Parental leave", opening) == {
        "countries": ["US"],
        "employment_types": ["full-time"],
    }
    assert stated_scope("Benefits", "US-based teammates are eligible for health benefits.") == {}
    everyone = "This policy applies to all employees and contractors globally."
    assert stated_scope("Acceptable use", everyone) == {}
    assert stated_scope("Offboarding", "This policy does not apply to contractors.") == {}


def test_countries_from_hr_systems_become_iso_codes() -> None:
    assert [normalise_country(c) for c in ("us", "UK", "United Kingdom", " gb ", None, "")] == [
        "US",
        "GB",
        "GB",
        "GB",
        None,
        None,
    ]


def test_employee_filters_keep_what_states_nothing_and_what_includes_them() -> None:
    employee = Employee(id="1", country="GB", employment_type="part-time")
    where = parse_filters(employee_filters(employee))

    def doc(**metadata: object) -> DocAttrs:
        return DocAttrs("d", "s", "text/plain", metadata)

    assert where.matches(doc())
    assert where.matches(doc(countries=["US", "GB"], employment_types=["part-time"]))
    assert not where.matches(doc(countries=["US"]))
    assert not where.matches(doc(employment_types=["full-time"]))
    assert employee_filters(Employee(id="2")) == {}  # nothing known: nothing filtered
    assert employee_filters(None) == {}


def test_an_employee_and_filters_on_the_same_key_are_refused() -> None:
    employee = Employee(id="1", country="GB")
    assert combine_filters({"source_id": "x"}, employee) == {
        "source_id": "x",
        "metadata.countries": {"missing_or_in": ["GB"]},
    }
    with pytest.raises(ValueError, match=r"metadata\.countries"):
        combine_filters({"metadata.countries": "US"}, employee)


def test_a_section_admits_whom_it_names_and_everyone_when_it_names_nobody() -> None:
    uk = {"countries": ["GB"]}
    assert applies_to(uk, Employee(id="1", country="GB"))
    assert not applies_to(uk, Employee(id="1", country="US"))
    assert applies_to(uk, Employee(id="1"))  # unknown country: shown, labelled
    assert applies_to({}, Employee(id="1", country="US"))
    assert applies_to(uk, None)
