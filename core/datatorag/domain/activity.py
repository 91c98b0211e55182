"""What the assistant said and what admins did: the question log and the audit log.

HR must be able to show later what the assistant answered, and from which version of which
policy. Personal data is minimised before anything is stored: emails, phone numbers and national
ids in questions and comments are masked, and the employee asking is kept only as a keyed hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

MAX_COMMENT_CHARS = 1000

# Order matters: ids and emails before phone numbers, whose pattern would eat their digits.
_MASKS = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "[national id]"),  # US SSN
    (
        re.compile(r"\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b", re.I),
        "[national id]",
    ),
    (re.compile(r"(?<![\w/])[+(]?\d[\d ().-]{7,}\d(?![\w/])"), "[phone]"),
)


def mask_personal_data(text: str) -> str:
    """``text`` with emails, phone numbers and national ids (US SSN, UK NI number) masked."""
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def employee_hash(key: bytes, tenant: str, employee_id: str) -> str:
    """A keyed hash of an employee id: the same employee maps to the same value within a tenant,
    and nobody without the key can tell who it is."""
    message = f"{tenant}\x00{employee_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class CitedVersion:
    doc_id: str
    version: str  # the chunk set's version prefix: which version of the policy was quoted
    title: str


@dataclass(frozen=True)
class AnswerRecord:
    answer_id: str
    tenant: str
    at: datetime
    question: str  # masked
    abstained: bool
    latency_ms: float
    cited: tuple[CitedVersion, ...] = ()
    employee: str | None = None  # employee_hash(...), never the id itself
    channel: str = "api"  # api, portal or embed


@dataclass(frozen=True)
class Feedback:
    answer_id: str
    tenant: str
    at: datetime
    helpful: bool
    comment: str = ""  # masked, at most MAX_COMMENT_CHARS


@dataclass(frozen=True)
class AdminAction:
    tenant: str
    at: datetime
    actor: str  # the API key id, "cli", or "portal:<key id>"
    action: str  # e.g. "key.create", "document.delete"
    target: str = ""
    details: dict[str, str] = field(default_factory=dict)


Entry = AnswerRecord | Feedback | AdminAction


def entry_to_json(entry: Entry) -> dict[str, Any]:
    """A JSON-ready dict of any log entry (both log adapters store this form)."""
    data = asdict(entry)
    data["at"] = entry.at.isoformat()
    return data


def answer_from_json(data: dict[str, Any]) -> AnswerRecord:
    cited = tuple(CitedVersion(**c) for c in data.pop("cited", ()))
    return AnswerRecord(**{**data, "at": datetime.fromisoformat(data["at"]), "cited": cited})


def feedback_from_json(data: dict[str, Any]) -> Feedback:
    return Feedback(**{**data, "at": datetime.fromisoformat(data["at"])})


def admin_action_from_json(data: dict[str, Any]) -> AdminAction:
    return AdminAction(**{**data, "at": datetime.fromisoformat(data["at"])})
