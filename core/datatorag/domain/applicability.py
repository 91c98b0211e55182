"""Whom a policy applies to: the vocabulary, and the rules that read it from text.

Three places use it: the processor reads a document's stated scope (``stated_scope``), search
filters documents inside the index for an employee (``employee_filters``), and search reads each
passage's section (``section_applicability``: a "UK" heading over a pension paragraph) to keep
the sections that do not apply to the employee out of their answer.

Countries are ISO 3166-1 alpha-2 codes. Names match in any case, on word boundaries; short codes
("US", "UK") only in capitals, so that "us" the pronoun never reads as a country.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from datatorag.domain.employees import Employee
from datatorag.domain.errors import InvalidRequest

# code -> (names, any case; abbreviations, capitals only)
COUNTRIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "US": (("united states", "united states of america"), ("US", "U.S.", "USA", "U.S.A.")),
    "GB": (("united kingdom", "great britain", "britain"), ("UK", "U.K.", "GB")),
    "CA": (("canada",), ()),
    "DE": (("germany",), ()),
    "FR": (("france",), ()),
    "IE": (("ireland",), ()),
    "NL": (("netherlands",), ()),
    "ES": (("spain",), ()),
    "IN": (("india",), ()),
    "AU": (("australia",), ()),
}
EMPLOYMENT_TYPES: dict[str, tuple[str, ...]] = {
    "full-time": ("full-time", "full time"),
    "part-time": ("part-time", "part time"),
    "contractor": ("contractor", "contractors", "contingent worker", "contingent workers"),
    "intern": ("intern", "interns", "internship", "internships"),
}
# Metadata keys of stated applicability, and the employee attribute each one is matched with.
APPLICABILITY_KEYS: dict[str, str] = {
    "countries": "country",
    "regions": "region",
    "employment_types": "employment_type",
    "departments": "department",
}


def _alternation(words: tuple[str, ...]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def _place(names: tuple[str, ...], codes: tuple[str, ...]) -> str:
    either = [f"(?i:{_alternation(names)})", *([_alternation(codes)] if codes else [])]
    return rf"(?<![\w.])(?:{'|'.join(either)})(?!\w)"


_PLACES = {code: _place(*words) for code, words in COUNTRIES.items()}
_NAMED = {code: re.compile(place) for code, place in _PLACES.items()}
# "In the UK, we use ...", "For US employees ..." at the start of a sentence.
_OPENING = {
    code: re.compile(rf"^(?i:in|for|within)\s+(?:(?i:the)\s+)?{place}")
    for code, place in _PLACES.items()
}
# "US-based employees", "UK team members".
_PEOPLE = {
    code: re.compile(
        rf"{place}(?i:-based|\s+based)?\s+(?i:employees|team members|staff|workers|teammates)"
    )
    for code, place in _PLACES.items()
}
# One scan picks the few countries whose patterns are worth running on a text: names in lower
# case against the lowered text, abbreviations as they are (capitals only).
_OWNER = {n.lower(): code for code, (names, _) in COUNTRIES.items() for n in names}
_OWNER |= {c: code for code, (_, codes) in COUNTRIES.items() for c in codes}
_ANY_NAME = re.compile(
    _alternation(tuple(n.lower() for names, _ in COUNTRIES.values() for n in names))
)
_ANY_CODE = re.compile(_alternation(tuple(c for _, codes in COUNTRIES.values() for c in codes)))
_TYPES = {
    kind: re.compile(rf"(?<!\w)(?:{_alternation(words)})(?!\w)", re.IGNORECASE)
    for kind, words in EMPLOYMENT_TYPES.items()
}
_EVERYONE = re.compile(r"\b(?:all|every|everyone|globally)\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
# A sentence that says whom the whole document is for ("This policy applies to full-time
# US-based employees."); "does not apply to" says the opposite, and is left alone.
_SCOPE = re.compile(
    r"\b(?:this|the)\s+(?:policy|document|handbook|guide|page|plan|program(?:me)?|benefit)"
    r"\s+(?:only\s+)?appl(?:y|ies)\s+(?:only\s+)?to\b",
    re.IGNORECASE,
)


def countries_named(text: str) -> list[str]:
    """Countries the text names, in ``COUNTRIES`` order."""
    return [code for code in _candidates(text) if _NAMED[code].search(text)]


def _candidates(text: str) -> list[str]:
    found = {_OWNER[w] for w in _ANY_NAME.findall(text.lower())}
    found |= {_OWNER[w] for w in _ANY_CODE.findall(text)}
    return [code for code in COUNTRIES if code in found]


def employment_types_named(text: str) -> list[str]:
    return [kind for kind, pattern in _TYPES.items() if pattern.search(text)]


def stated_scope(title: str, opening: str) -> dict[str, list[str]]:
    """What a document says of whom it covers: countries in its title, or countries and
    employment types in a scope sentence near the top ("This policy applies to full-time
    US-based employees."). Mentions elsewhere ("our US office", "US-based teammates are
    eligible for ...") state nothing: a section's scope is read per passage at search time."""
    scope = [s for s in _SENTENCE.split(opening) if _SCOPE.search(s)]
    found: dict[str, list[str]] = {}
    countries = countries_named(title) or _union(countries_named(s) for s in scope)
    if countries:
        found["countries"] = countries
    # "applies to all employees and contractors" covers every employment type.
    narrow = [s for s in scope if not _EVERYONE.search(s)]
    types = employment_types_named(title) or _union(employment_types_named(s) for s in narrow)
    if types:
        found["employment_types"] = types
    return found


def section_applicability(heading: str, text: str) -> dict[str, list[str]]:
    """The countries a passage's own section is for, or ``{}`` when it states none.

    The deepest heading that names countries decides ("Benefits > UK > Pension" is GB);
    without one, sentences that open on a place ("In the UK, we use Royal London.") or name
    its people ("US-based employees") do. A passage that only mentions a country states nothing.
    """
    if _candidates(heading):
        for part in reversed([p.strip() for p in heading.split(">")]):
            if countries := countries_named(part):
                return {"countries": countries}
    candidates = _candidates(text)
    if not candidates:
        return {}  # most passages name no country
    sentences = [s.strip() for s in _SENTENCE.split(text)]
    countries = _union(_scoped_countries(s, _candidates(s)) for s in sentences if s)
    return {"countries": countries} if countries else {}


def _scoped_countries(sentence: str, candidates: list[str]) -> list[str]:
    """The candidates this sentence opens on ("In the UK, ...") or names people of."""
    return [
        code
        for code in candidates
        if _OPENING[code].match(sentence) or _PEOPLE[code].search(sentence)
    ]


def _union(lists: Any) -> list[str]:
    seen: dict[str, None] = {}
    for items in lists:
        seen.update(dict.fromkeys(items))
    return list(seen)


def normalise_country(country: str | None) -> str | None:
    """An ISO code from what an HR system or a caller gives: "us" -> "US", "UK" -> "GB"."""
    if country is None or not country.strip():
        return None
    code = country.strip().upper()
    if code in {"UK", "U.K."}:
        return "GB"
    named = countries_named(country)
    return named[0] if len(code) != 2 and len(named) == 1 else code


def employee_filters(employee: Employee | None) -> dict[str, Any]:
    """Search filters that keep the documents whose stated applicability includes the
    employee, or that state none (``missing_or_in``). Unknown attributes filter nothing."""
    if employee is None:
        return {}
    filters: dict[str, Any] = {}
    for key, attribute in APPLICABILITY_KEYS.items():
        value = getattr(employee, attribute)
        if value:
            filters[f"metadata.{key}"] = {"missing_or_in": [value]}
    return filters


def combine_filters(filters: Mapping[str, Any] | None, employee: Employee | None) -> dict[str, Any]:
    """The caller's filters and the employee's. Raises ``InvalidRequest`` when both name a key."""
    extra = employee_filters(employee)
    clash = sorted(set(filters or {}) & set(extra))
    if clash:
        raise InvalidRequest(f"filter {clash[0]!r} and employee both decide applicability: use one")
    return {**(filters or {}), **extra}


def applies_to(applicability: Mapping[str, list[str]], employee: Employee | None) -> bool:
    """Whether a passage's applicability admits the employee (unknown attributes admit)."""
    if employee is None:
        return True
    for key, attribute in APPLICABILITY_KEYS.items():
        stated, value = applicability.get(key), getattr(employee, attribute)
        if stated and value and value not in stated:
            return False
    return True
