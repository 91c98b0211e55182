"""Searches as OpenSearch query bodies, and hits back as ``SearchHit``.

The caller passes the bool ``filter`` clauses already limited to one tenant
(``scope.tenant_filters``); ``scope.ChunkRequests`` refuses to send a body that is not.

Filters have the embedded index's semantics (``datatorag.domain.filters``) and run as
bool ``filter`` clauses *inside* the knn query (efficient filtering, lucene or faiss engines:
https://docs.opensearch.org/latest/vector-search/filter-search-knn/efficient-knn-filtering/)
and inside the BM25 bool query, so ``top_k`` counts only matching chunks. Document fields are
keywords; metadata is matched on its typed copies (``mappings.py``).

Keyword queries send the words as a ``match`` query (never query syntax). Lucene ignores
``ef_search`` and searches with ef = k, so a knn query asks for k = max(top_k, 100) and returns
``size`` = top_k.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from datatorag.adapters.index.opensearch.mappings import (
    META_KEYS,
    META_NUMBER,
    META_TEXT,
    SEARCH_FIELD,
    VECTOR_FIELD,
    VECTOR_FIELDS,
    Body,
)
from datatorag.domain.filters import Condition, parse_filters
from datatorag.domain.keywords import content_words
from datatorag.domain.models import SearchHit
from datatorag.ports import Filters

EF_SEARCH = 100  # lucene's beam is k: ask for at least this many candidates
MAX_K = 10_000  # the knn query's maximum k, and the default max_result_window
MATCH_NONE: dict[str, Any] = {"match_none": {}}
_QUERY_TOKEN = re.compile(r"[^\W_]+")


def keyword_words(query: str) -> list[str]:
    """The words a keyword query searches: the embedded index's tokens and stop words."""
    return content_words([t.lower() for t in _QUERY_TOKEN.findall(query)])


def keyword_query(words: Sequence[str], top_k: int, filters: list[Body]) -> Body:
    return {
        "size": top_k,
        "track_total_hits": False,
        "_source": {"excludes": [VECTOR_FIELDS]},
        "query": {
            "bool": {
                "must": [{"match": {SEARCH_FIELD: {"query": " ".join(words), "operator": "or"}}}],
                "filter": filters,
            }
        },
    }


def vector_query(
    vector: Sequence[float], top_k: int, filters: list[Body], field: str = VECTOR_FIELD
) -> Body:
    """A knn query on ``field`` whose filter runs inside the graph search (efficient
    filtering)."""
    return {
        "size": top_k,
        "track_total_hits": False,
        "_source": {"excludes": [VECTOR_FIELDS]},
        "query": {
            "knn": {
                field: {
                    "vector": list(vector),
                    "k": min(max(top_k, EF_SEARCH), MAX_K),
                    "filter": {"bool": {"filter": filters}},
                }
            }
        },
    }


def filter_clauses(filters: Filters | None) -> list[Body]:
    """OpenSearch bool ``filter`` clauses with the embedded index's filter semantics.

    Raises ``ValueError`` for an invalid filter, as ``parse_filters`` does.
    """
    return [_clause(condition) for condition in parse_filters(filters).conditions]


def _clause(condition: Condition) -> Body:
    if condition.key is None:  # doc_id, source_id, media_type: keywords holding strings
        field = condition.field
        if condition.kind == "eq":
            return {"term": {field: condition.value}}
        if condition.kind == "in":
            return {"terms": {field: list(condition.value)}} if condition.value else MATCH_NONE
        if all(isinstance(bound, str) for _, bound in condition.value):
            return {"range": {field: dict(condition.value)}}
        return MATCH_NONE  # a number never compares with a string field
    return _metadata_clause(condition.key, condition)


def _metadata_clause(key: str, condition: Condition) -> Body:
    text, number = f"{META_TEXT}.{key}", f"{META_NUMBER}.{key}"
    if condition.kind == "missing_or_in":  # strings only (parse_filters checks)
        missing = {"bool": {"must_not": [{"term": {META_KEYS: key}}]}}
        listed = [{"terms": {text: list(condition.value)}}] if condition.value else []
        return {"bool": {"should": [missing, *listed], "minimum_should_match": 1}}
    if condition.kind == "eq":
        if condition.value is None:  # missing or null
            return {"bool": {"must_not": [{"term": {META_KEYS: key}}]}}
        if isinstance(condition.value, str):
            return {"term": {text: condition.value}}
        return {"term": {number: float(condition.value)}}
    if condition.kind == "in":
        strings = [v for v in condition.value if isinstance(v, str)]
        numbers = [float(v) for v in condition.value if not isinstance(v, str)]
        should = [{"terms": {f: vs}} for f, vs in ((text, strings), (number, numbers)) if vs]
        if not should:
            return MATCH_NONE
        return (
            should[0]
            if len(should) == 1
            else {"bool": {"should": should, "minimum_should_match": 1}}
        )
    bounds = condition.value
    if all(isinstance(bound, str) for _, bound in bounds):
        return {"range": {text: dict(bounds)}}
    if not any(isinstance(bound, str) for _, bound in bounds):
        return {"range": {number: {op: float(bound) for op, bound in bounds}}}
    return MATCH_NONE  # one value cannot be both a string and a number


def check_top_k(top_k: int) -> int:
    if top_k < 0:
        raise ValueError("top_k must not be negative")
    return min(top_k, MAX_K)


def cosine(score: float) -> float:
    """Undo lucene's cosinesimil scoring, (1 + cos) / 2."""
    return max(-1.0, min(1.0, 2.0 * score - 1.0))


def hit(hit: Body, score: float) -> SearchHit:
    source = hit["_source"]
    return SearchHit(
        chunk_id=source["chunk_id"],
        doc_id=source["doc_id"],
        title=source["title"],
        source_uri=source["source_uri"],
        pages=source["pages"],
        ocr_pages=source.get("ocr_pages", []),  # absent from chunks indexed before OCR
        heading=source["heading"],
        text=source["text"],
        score=score,
    )
