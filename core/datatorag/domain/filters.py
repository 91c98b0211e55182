"""Search filters: parsed once, then evaluated per document, in memory, by both searches.

The OpenSearch adapter translates the same conditions into queries that must agree with them on
every input, so the rules are kept deliberately small:

- ``{"source_id": "x"}``: equality; ``{"media_type": ["a", "b"]}``: any of the listed values;
- ``{"metadata.country": "US"}``: a key of the document's metadata (missing equals ``None``);
  a list value (``"tags": ["leave", "us"]``) matches when any of its items does, as an
  OpenSearch term query on an array field does;
- ``{"effective_date": {"gte": "2024-01-01", "lt": "2025-01-01"}}``: a range. Strings compare
  with strings (ISO dates sort lexically), numbers with numbers; any other pairing never matches.
- ``{"metadata.countries": {"missing_or_in": ["GB"]}}``: the key is missing (or null), or
  holds one of the values: "applies to everyone unless it says otherwise", how
  applicability filters keep documents that state none.

``effective_date`` is shorthand for ``metadata.effective_date``. Every filter is a property of
the document (the chunks carry a copy taken when they were indexed), so a search can evaluate a
filter once per document instead of once per chunk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from datatorag.domain.errors import InvalidRequest
from datatorag.domain.models import METADATA_KEY

Scalar = str | int | float | bool | None

FIELDS = ("doc_id", "source_id", "media_type")  # document fields copied onto every chunk
ALIASES = {"effective_date": "metadata.effective_date"}
RANGE_OPERATORS = ("gte", "gt", "lte", "lt")
MISSING_OR_IN = "missing_or_in"


# One schema per value, no anyOf: ``items`` applies to a list, the range keywords to an object.
_RANGE = {
    "properties": {op: {"type": ["string", "number"]} for op in RANGE_OPERATORS},
    "additionalProperties": False,
    "minProperties": 1,
}
_TEXT = {"type": ["string", "array", "object"], "items": {"type": "string"}, **_RANGE}
_ANY = {
    "type": ["string", "number", "boolean", "null", "array", "object"],
    "items": {"type": ["string", "number", "boolean"]},
    **_RANGE,
}
# The filter language as JSON Schema (2020-12, as OpenAPI 3.1 uses): what parse_filters accepts.
JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {**{name: _TEXT for name in FIELDS}, **{alias: _ANY for alias in ALIASES}},
    "patternProperties": {r"^metadata\.[A-Za-z0-9_-]{1,64}$": _ANY},
    "additionalProperties": False,
}


@dataclass(frozen=True)
class DocAttrs:
    """The filterable properties of one indexed document."""

    doc_id: str
    source_id: str
    media_type: str
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class Condition:
    field: str  # one of FIELDS, or "metadata"
    key: str | None  # the metadata key when field == "metadata"
    kind: Literal["eq", "in", "range", "missing_or_in"]
    value: Any  # a scalar, a tuple of scalars, or a tuple of (operator, bound) pairs

    def matches(self, attrs: DocAttrs) -> bool:
        actual = (
            attrs.metadata.get(self.key) if self.key is not None else getattr(attrs, self.field)
        )
        if self.kind == "missing_or_in":
            items = actual if isinstance(actual, list) else [actual]
            return actual is None or any(_same(item, v) for item in items for v in self.value)
        if isinstance(actual, list) and not (self.kind == "eq" and self.value is None):
            return any(self._matches_one(item) for item in actual)
        return self._matches_one(actual)

    def _matches_one(self, actual: Any) -> bool:
        if self.kind == "eq":
            return _same(actual, self.value)
        if self.kind == "in":
            return any(_same(actual, v) for v in self.value)
        return all(_compare(actual, op, bound) for op, bound in self.value)


@dataclass(frozen=True)
class Filter:
    """A conjunction of conditions; the empty filter matches everything."""

    conditions: tuple[Condition, ...] = ()

    def matches(self, attrs: DocAttrs) -> bool:
        return all(c.matches(attrs) for c in self.conditions)


def parse_filters(filters: Mapping[str, Any] | None) -> Filter:
    """Validate a filter mapping. Raises ``InvalidRequest`` naming what is wrong."""
    if not filters:
        return Filter()
    if not isinstance(filters, Mapping):
        raise InvalidRequest("filters must be an object mapping field names to values")
    return Filter(tuple(_condition(str(name), value) for name, value in filters.items()))


def _condition(name: str, value: Any) -> Condition:
    field, key = _field(ALIASES.get(name, name))
    text_only = key is None  # document fields are strings; metadata may hold any JSON scalar
    if isinstance(value, Mapping) and MISSING_OR_IN in value:
        return Condition(field, key, "missing_or_in", _missing_or_in(name, key, value))
    if isinstance(value, Mapping):
        return Condition(field, key, "range", _range(name, value))
    if isinstance(value, list | tuple):
        items = tuple(_scalar(name, v, text_only=text_only, allow_none=False) for v in value)
        return Condition(field, key, "in", items)
    return Condition(field, key, "eq", _scalar(name, value, text_only=text_only, allow_none=True))


def _field(name: str) -> tuple[str, str | None]:
    if name in FIELDS:
        return name, None
    if name.startswith("metadata."):
        key = name.removeprefix("metadata.")
        if not METADATA_KEY.match(key):
            raise InvalidRequest(
                f"invalid metadata filter key {key!r}: use letters, digits, '_' or '-' (at most 64)"
            )
        return "metadata", key
    accepted = ", ".join([*FIELDS, *ALIASES, "metadata.<key>"])
    raise InvalidRequest(f"unknown filter field {name!r}; filterable fields: {accepted}")


def _missing_or_in(name: str, key: str | None, operator: Mapping[str, Any]) -> tuple[Scalar, ...]:
    values = operator[MISSING_OR_IN]
    if key is None or len(operator) != 1 or not isinstance(values, list | tuple):
        raise ValueError(
            f"filter {name!r}: missing_or_in takes a list, alone, on a metadata.<key> field"
        )
    return tuple(_scalar(name, v, text_only=True, allow_none=False) for v in values)


def _range(name: str, operators: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    if not operators:
        raise InvalidRequest(f"empty range for filter {name!r}; use gte, gt, lte or lt")
    bounds = []
    for op, bound in operators.items():
        if op not in RANGE_OPERATORS:
            raise InvalidRequest(
                f"unknown operator {op!r} for filter {name!r}; use gte, gt, lte or lt"
            )
        if isinstance(bound, bool) or not isinstance(bound, str | int | float):
            raise InvalidRequest(
                f"range bound {op} of filter {name!r} must be a string or a number"
            )
        bounds.append((str(op), _finite(name, bound)))
    return tuple(bounds)


def _scalar(name: str, value: Any, *, text_only: bool, allow_none: bool) -> Scalar:
    if text_only and not isinstance(value, str):
        raise InvalidRequest(f"filter {name!r} takes a string or a list of strings")
    if value is None and allow_none:
        return None
    if not isinstance(value, str | int | float | bool):
        raise InvalidRequest(f"filter {name!r}: {value!r} is not a string, number or boolean")
    return _finite(name, value)


def _finite(name: str, value: Scalar) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequest(f"filter {name!r}: {value!r} is not a finite number")
    return value


def _is_number(value: Any) -> bool:
    # JSON true/false compare as the numbers 1/0 (as SQLite and OpenSearch hold them).
    return isinstance(value, int | float)


def _same(actual: Any, expected: Scalar) -> bool:
    if expected is None or actual is None:
        return actual is None and expected is None
    if isinstance(expected, str) or isinstance(actual, str):
        return isinstance(expected, str) and isinstance(actual, str) and actual == expected
    return _is_number(actual) and actual == expected


def _compare(actual: Any, op: str, bound: str | float) -> bool:
    if isinstance(bound, str):
        if not isinstance(actual, str):
            return False
    elif not _is_number(actual):
        return False
    if op == "gte":
        return bool(actual >= bound)
    if op == "gt":
        return bool(actual > bound)
    if op == "lte":
        return bool(actual <= bound)
    return bool(actual < bound)
