"""Search modes over the index: keyword (BM25), vector, and hybrid (reciprocal rank fusion)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from threading import Lock
from typing import Literal

from datatorag.domain.applicability import applies_to, combine_filters, section_applicability
from datatorag.domain.employees import Employee
from datatorag.domain.errors import VectorSpaceMismatch
from datatorag.domain.models import SearchHit, chunk_ordinal
from datatorag.log import get_logger
from datatorag.ports import Embeddings, Filters, SearchIndex

log = get_logger(__name__)

Mode = Literal["hybrid", "vector", "keyword"]
RRF_K = 60  # the constant from Cormack et al. (2009); dampens the weight of top ranks
# Hits each retriever contributes to the fusion. Their texts are read from the index, so depth
# costs CPU on every query; 15-80 scored the same on the dev set (docs/benchmarks.md).
CANDIDATES = 30
# Employees paraphrase policies; the vector ranking copes better with that than BM25, so it
# counts a little more in the fusion (docs/benchmarks.md: the sweep behind this number).
VECTOR_WEIGHT = 1.5
# Searching for an employee drops the passages of sections that are not for them after the
# index has ranked them, so each retriever hands over this many times more candidates.
EMPLOYEE_OVERFETCH = 2
FRESH_S = 1.0  # a query vector older than this came from the cache


@dataclass(frozen=True)
class QueryVector:
    values: list[float]
    space: str  # the embedding space it was embedded in (domain.spaces)
    at: float = field(default_factory=time.monotonic)  # when

    def stale(self) -> bool:
        """Embedded before this search (cached): the endpoint may have changed model since."""
        return time.monotonic() - self.at > FRESH_S


@dataclass(frozen=True)
class Found:
    hits: list[SearchHit]
    # Best cosine of the query to a candidate (the answer's confidence gate); None when vector
    # search was skipped, 0.0 when nothing matched.
    best: float | None
    # Why vector search was skipped (the tenant's index is in another embedding space); None
    # when it ran, or when the caller asked for keyword search.
    keyword_only: str | None = None


class QueryVectorCache:
    """Repeated queries skip the model: an LRU of (tenant, query text) -> vector and its space.

    Keyed by tenant too, although the vector does not depend on it: a shared entry would let a
    tenant time its search and learn that another tenant asked the very same question. A vector
    cached before the model changed keeps its old space, so it is never compared across spaces.
    """

    def __init__(self, embeddings: Embeddings, size: int = 4096) -> None:
        self.embeddings = embeddings
        self.size = size
        self._cache: OrderedDict[tuple[str, str], QueryVector] = OrderedDict()
        self._lock = Lock()

    def cached(self, tenant: str, query: str) -> QueryVector | None:
        with self._lock:
            return self._cache.get((tenant, query))

    def vector(self, tenant: str, query: str, *, fresh: bool = False) -> QueryVector:
        """The cached vector, or (``fresh``, or none cached) one embedded now."""
        key = (tenant, query)
        with self._lock:
            if key in self._cache and not fresh:
                self._cache.move_to_end(key)
                return self._cache[key]
        embedded = self.embeddings.embed_in_space([query])
        vector = QueryVector(embedded.vectors[0].tolist(), embedded.space)
        with self._lock:
            self._cache[key] = vector
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return vector


class Searcher:
    def __init__(self, index: SearchIndex, embeddings: Embeddings) -> None:
        self.index = index
        self.query_vectors = QueryVectorCache(embeddings)
        self._mismatches_logged: set[tuple[str, str, str]] = set()

    def search(
        self,
        tenant: str,
        query: str,
        top_k: int,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
        vector: QueryVector | None = None,
        employee: Employee | None = None,
    ) -> list[SearchHit]:
        """``vector``: the query's embedding when the caller already has it. ``employee``:
        only documents and sections that apply to them (or state no applicability); raises
        ``ValueError`` when ``filters`` also decide applicability."""
        return self.find(tenant, query, top_k, mode, filters, vector, employee).hits

    def hybrid(
        self,
        tenant: str,
        query: str,
        top_k: int,
        filters: Filters | None = None,
        vector: QueryVector | None = None,
        employee: Employee | None = None,
    ) -> Found:
        """Hybrid hits, and the best cosine similarity of the query to any chunk of the documents
        the employee may see (0.0 when none matches): the vector candidates come best first, so
        the answer's confidence gate costs no second search."""
        return self.find(tenant, query, top_k, "hybrid", filters, vector, employee)

    def find(
        self,
        tenant: str,
        query: str,
        top_k: int,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
        vector: QueryVector | None = None,
        employee: Employee | None = None,
    ) -> Found:
        """``search``, saying also whether vector search had to be skipped, and why."""
        filters = combine_filters(filters, employee) or None
        depth = max(CANDIDATES, 2 * top_k)  # merging neighbours needs spare candidates
        if employee is not None:
            depth *= EMPLOYEE_OVERFETCH
        found = self._ranked(tenant, query, depth, mode, filters, vector)
        # Lazily: only the candidates that merging reads get labelled.
        labelled = (
            hit.model_copy(update={"applies_to": section_applicability(hit.heading, hit.text)})
            for hit in found.hits
        )
        mine = (h for h in labelled if applies_to(h.applies_to, employee))
        return replace(found, hits=merge_neighbours(mine, top_k))

    def _ranked(
        self,
        tenant: str,
        query: str,
        depth: int,
        mode: Mode,
        filters: Filters | None,
        vector: QueryVector | None,
    ) -> Found:
        """The candidates best first, and the best vector score among them."""
        if mode == "keyword":
            return Found(self.index.keyword_search(tenant, query, depth, filters), 0.0)
        query_vector = vector or self.query_vectors.vector(tenant, query)
        try:
            semantic = self._semantic(tenant, query, query_vector, depth, filters)
        except VectorSpaceMismatch as err:
            # Comparing across spaces would rank at random: keywords only until re-embedded.
            self._log_mismatch(err)
            keyword = self.index.keyword_search(tenant, query, depth, filters)
            return Found(keyword, None, str(err))
        best = max((hit.score for hit in semantic), default=0.0)
        if mode == "vector":
            return Found(semantic, best)
        keyword = self.index.keyword_search(tenant, query, depth, filters)
        fused = reciprocal_rank_fusion([keyword, semantic], depth, weights=[1.0, VECTOR_WEIGHT])
        return Found(fused, best)

    def _semantic(
        self,
        tenant: str,
        query: str,
        vector: QueryVector,
        depth: int,
        filters: Filters | None,
    ) -> list[SearchHit]:
        """Vector search; a cached vector of another space than the tenant's is embedded again
        (the tenant was re-embedded into the endpoint's new space since it was cached)."""
        try:
            return self.index.vector_search(
                tenant, vector.values, depth, filters, space=vector.space
            )
        except VectorSpaceMismatch:
            if not vector.stale():
                raise
            fresh = self.query_vectors.vector(tenant, query, fresh=True)
            if fresh.space == vector.space:
                raise
            return self.index.vector_search(tenant, fresh.values, depth, filters, space=fresh.space)

    def _log_mismatch(self, err: VectorSpaceMismatch) -> None:
        """Once per tenant and pair of spaces in this process: every search would repeat it."""
        key = (err.tenant, err.index_space, err.given_space)
        if key not in self._mismatches_logged:
            self._mismatches_logged.add(key)
            log.warning(
                "search.keyword_only",
                tenant=err.tenant,
                index_space=err.index_space,
                query_space=err.given_space,
                reason="vector space mismatch: run `datatorag reembed`",
            )


def reciprocal_rank_fusion(
    rankings: list[list[SearchHit]], top_k: int, weights: list[float] | None = None
) -> list[SearchHit]:
    scores: dict[str, float] = {}
    hits: dict[str, SearchHit] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings), strict=True):
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight / (RRF_K + rank)
            hits.setdefault(hit.chunk_id, hit)
    best = sorted(scores, key=scores.__getitem__, reverse=True)[:top_k]
    return [hits[c].model_copy(update={"score": scores[c]}) for c in best]


def merge_neighbours(ranked: Iterable[SearchHit], top_k: int) -> list[SearchHit]:
    """Neighbouring chunks of one document become one passage, in the place of the better one
    (when their sections apply to the same people).

    An answer often runs past a chunk's end; showing the two chunks as one passage keeps it
    whole and frees a slot in the top k for another passage (measured in docs/benchmarks.md).
    """
    passages: list[tuple[set[int], SearchHit]] = []
    for hit in ranked:
        ordinal = chunk_ordinal(hit.chunk_id)
        for i, (ordinals, passage) in enumerate(passages):
            if (
                passage.doc_id == hit.doc_id
                and passage.applies_to == hit.applies_to
                and {ordinal - 1, ordinal + 1} & ordinals
            ):
                first, second = (hit, passage) if ordinal < min(ordinals) else (passage, hit)
                merged = passage.model_copy(
                    update={
                        "text": _join(first.text, second.text),
                        "pages": sorted(set(first.pages) | set(second.pages)),
                        "ocr_pages": sorted(set(first.ocr_pages) | set(second.ocr_pages)),
                        "heading": first.heading,
                    }
                )
                passages[i] = (ordinals | {ordinal}, merged)
                break
        else:
            if len(passages) == top_k:
                break
            passages.append(({ordinal}, hit))
    return [passage for _, passage in passages]


def _join(first: str, second: str) -> str:
    """Consecutive chunks overlap by whole lines: keep the shared lines once."""
    a, b = first.split("\n"), second.split("\n")
    for size in range(min(len(a), len(b)), 0, -1):
        if a[-size:] == b[:size]:
            return "\n".join(a + b[size:])
    return f"{first}\n{second}"
