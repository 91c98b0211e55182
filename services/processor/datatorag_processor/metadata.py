"""What a document says about itself: its kind of policy, when it took effect, whom it covers.

Deliberately conservative heuristics over the title, headings and opening text: a key is set
only when the document states it. Whom it covers (``countries``, ``employment_types``) comes
from its title or a scope sentence near the top (``datatorag.domain.applicability``), never from
a passing mention: searches for an employee filter on it. Metadata the source supplies
(``ingest --meta``, upload form fields) overrides these. All of it is filterable
(``metadata.<key>``; ``effective_date``).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from dateutil import parser as dateparser

from datatorag.domain.applicability import stated_scope
from datatorag_processor.extract.model import ExtractedDocument

# First match wins, checked against the title, then the headings.
DOCUMENT_TYPES: dict[str, tuple[str, ...]] = {
    "leave": ("leave", "time off", "pto", "vacation", "holiday", "sick", "fmla", "absence"),
    "benefits": (
        "benefit",
        "insurance",
        "health",
        "401k",
        "401(k)",
        "retirement",
        "wellness",
        "perk",
        "transit",
    ),
    "conduct": (
        "conduct",
        "harassment",
        "ethics",
        "respectful",
        "hotline",
        "discrimination",
        "inclusive",
        "accommodation",
    ),
    "travel": ("travel", "trip", "per diem"),
    "expenses": ("expense", "reimbursement", "spending", "receipt", "purchase"),
    "compensation": (
        "compensation",
        "salary",
        "pay ",
        "payroll",
        "equity",
        "bonus",
        "stock",
        "share option",
        "promotion",
    ),
    "performance": ("performance", "review", "feedback", "development plan", "pip"),
    "security": ("security", "password", "device", "acceptable use", "sensitive information"),
    "onboarding": ("onboarding", "welcome", "getting started", "new hire"),
    "offboarding": ("offboarding", "leaving", "termination", "severance", "resignation"),
}
_EFFECTIVE = re.compile(
    r"\b(?:effective(?: date)?|last (?:updated|revised|reviewed)|revised|updated)"
    r"(?: (?:as of|on|from))?\s*[:\-]?\s*"
    r"(\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4}"
    r"|[A-Z][a-z]+\.? \d{1,2},? \d{4}|\d{1,2} [A-Z][a-z]+ \d{4})",
    re.IGNORECASE,
)
OPENING_BLOCKS = 40  # effective dates and scope statements sit near the top


def derive(doc: ExtractedDocument, title: str) -> dict[str, Any]:
    headings = [b.text for b in doc.blocks if b.kind == "heading"]
    opening = "\n".join(b.text for b in doc.blocks[:OPENING_BLOCKS])
    found: dict[str, Any] = {}
    if kind := _document_type([title, *headings]):
        found["document_type"] = kind
    if effective := _effective_date(opening):
        found["effective_date"] = effective
    found.update(stated_scope(title, opening))  # countries, employment_types
    return found


def _document_type(texts: list[str]) -> str | None:
    for text in texts:
        lowered = f" {text.lower()} "
        for kind, words in DOCUMENT_TYPES.items():
            if any(word in lowered for word in words):
                return kind
    return None


def _effective_date(text: str) -> str | None:
    match = _EFFECTIVE.search(text)
    if not match:
        return None
    try:
        parsed = dateparser.parse(match.group(1), default=None).date()
    except (ValueError, OverflowError, AttributeError):
        return None
    return parsed.isoformat() if date(1950, 1, 1) <= parsed <= date(2100, 1, 1) else None
