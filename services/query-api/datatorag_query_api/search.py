"""Search modes over the index: keyword (BM25), vector, and hybrid (reciprocal rank fusion)."""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from typing import Literal

from datatorag.models import SearchHit
from datatorag.ports import Embeddings, Filters, SearchIndex

Mode = Literal["hybrid", "vector", "keyword"]
RRF_K = 60  # the constant from Cormack et al. (2009); dampens the weight of top ranks
CANDIDATES = 50  # hits each retriever contributes to the fusion
# Employees paraphrase policies; the vector ranking copes better with that than BM25, so it
# counts a little more in the fusion (docs/benchmarks.md: the sweep behind this number).
VECTOR_WEIGHT = 1.5


class QueryVectorCache:
    """Repeated queries skip the model: an LRU of query text -> vector."""

    def __init__(self, embeddings: Embeddings, size: int = 4096) -> None:
        self.embeddings = embeddings
        self.size = size
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = Lock()

    def vector(self, query: str) -> list[float]:
        with self._lock:
            if query in self._cache:
                self._cache.move_to_end(query)
                return self._cache[query]
        vector: list[float] = self.embeddings.embed([query])[0].tolist()
        with self._lock:
            self._cache[query] = vector
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return vector


class Searcher:
    def __init__(self, index: SearchIndex, embeddings: Embeddings) -> None:
        self.index = index
        self.query_vectors = QueryVectorCache(embeddings)

    def search(
        self,
        tenant: str,
        query: str,
        top_k: int,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
    ) -> list[SearchHit]:
        if mode == "keyword":
            return self.index.keyword_search(tenant, query, top_k, filters)
        vector = self.query_vectors.vector(query)
        if mode == "vector":
            return self.index.vector_search(tenant, vector, top_k, filters)
        depth = max(CANDIDATES, top_k)
        keyword = self.index.keyword_search(tenant, query, depth, filters)
        semantic = self.index.vector_search(tenant, vector, depth, filters)
        return reciprocal_rank_fusion([keyword, semantic], top_k, weights=[1.0, VECTOR_WEIGHT])


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
