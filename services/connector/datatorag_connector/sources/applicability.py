"""HR systems' words for places and kinds of work, in the processor's vocabulary.

Countries become ISO 3166-1 alpha-2 codes ("United Kingdom", "GBR", "gb" -> "GB", through
pycountry's ISO tables); regions the ISO 3166-2 subdivision code without its country ("US-CA",
"California" -> "CA"); employment types one of ``full-time``, ``part-time``, ``contractor``,
``intern``. What cannot be read is left out, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import pycountry

EMPLOYMENT_TYPES = ("full-time", "part-time", "contractor", "intern")
_EMPLOYMENT_WORDS = (
    ("part-time", ("part time", "part-time", "parttime", "pt")),
    ("full-time", ("full time", "full-time", "fulltime", "ft", "regular", "salaried")),
    ("contractor", ("contractor", "contract", "contingent", "consultant", "freelance", "1099")),
    ("intern", ("intern", "internship", "student", "co-op", "apprentice")),
)
_COMMON_NAMES = {"uk": "GB", "great britain": "GB", "england": "GB", "usa": "US", "u.s.": "US"}


def country_code(value: object) -> str | None:
    """ISO alpha-2 code of a country named, or coded alpha-2/alpha-3; None if not a country."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.lower() in _COMMON_NAMES:
        return _COMMON_NAMES[text.lower()]
    try:
        country = pycountry.countries.lookup(text)
    except LookupError:
        return None
    return str(country.alpha_2)


def region_code(value: object, country: str | None) -> str | None:
    """The subdivision code within ``country`` ("CA" for California), or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    code = text.split("-", 1)[1] if re.fullmatch(r"[A-Za-z]{2}-\w{1,3}", text) else text
    if country is None:
        return code.upper() if re.fullmatch(r"\w{1,3}", code) else None
    found = pycountry.subdivisions.get(country_code=country)  # type: ignore[no-untyped-call]
    for subdivision in found or ():
        short = str(subdivision.code).split("-", 1)[1]
        if code.upper() == short or text.lower() == str(subdivision.name).lower():
            return short
    return None


def employment_type(value: object) -> str | None:
    """``full-time``, ``part-time``, ``contractor`` or ``intern`` for an HR system's wording."""
    if not isinstance(value, str):
        return None
    words = re.sub(r"[_/]", " ", value.strip().lower())
    for kind, spellings in _EMPLOYMENT_WORDS:
        if any(re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", words) for s in spellings):
            return kind
    return None


def audience_metadata(descriptors: Iterable[str]) -> dict[str, Any]:
    """Metadata keys for an audience stated as names ("United Kingdom", "Part-Time", "Sales").

    A name that is a country goes to ``countries``, a kind of work to ``employment_types``;
    the others (teams, groups) become ``tags``.
    """
    countries, kinds, tags = set(), set(), set()
    for descriptor in descriptors:
        if kind := employment_type(descriptor):  # before countries: "PT" is part-time here
            kinds.add(kind)
        elif code := country_code(descriptor):
            countries.add(code)
        elif descriptor.strip():
            tags.add(descriptor.strip())
    found: dict[str, Any] = {}
    for key, values in (("countries", countries), ("employment_types", kinds), ("tags", tags)):
        if values:
            found[key] = sorted(values)
    return found
