import numpy as np
import pytest

from datatorag.domain.models import SearchHit
from datatorag.ports import Embedded
from datatorag.usecases.search import RRF_K, QueryVectorCache, reciprocal_rank_fusion

pytestmark = pytest.mark.unit


def hit(chunk_id: str) -> SearchHit:
    return SearchHit(
        chunk_id=chunk_id,
        doc_id=chunk_id[0],
        title="",
        source_uri="",
        pages=[],
        heading="",
        text=chunk_id,
        score=0.0,
    )


def test_a_chunk_both_retrievers_rank_well_beats_one_ranked_first_by_one():
    keyword = [hit("a1"), hit("b1"), hit("c1")]
    vector = [hit("d1"), hit("b1"), hit("e1")]
    fused = reciprocal_rank_fusion([keyword, vector], top_k=4)
    assert fused[0].chunk_id == "b1"
    assert fused[0].score == pytest.approx(2 / (RRF_K + 2))
    assert {h.chunk_id for h in fused[1:3]} == {"a1", "d1"}
    assert len(fused) == 4


def test_fusion_truncates_and_keeps_scores_descending():
    fused = reciprocal_rank_fusion(
        [[hit(f"k{i}") for i in range(10)], [hit(f"v{i}") for i in range(10)]], top_k=5
    )
    assert len(fused) == 5
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)


def chunk(doc: str, ordinal: int, text: str, pages: list[int]) -> SearchHit:
    return SearchHit(
        chunk_id=f"{doc}:v:{ordinal}",
        doc_id=doc,
        title="",
        source_uri="",
        pages=pages,
        heading=f"h{ordinal}",
        text=text,
        score=1.0 / (ordinal + 1),
    )


def test_neighbouring_chunks_of_a_document_become_one_passage():
    from datatorag.usecases.search import merge_neighbours

    ranked = [
        chunk("a", 3, "c\nd", [2]),
        chunk("b", 0, "x", [1]),
        chunk("a", 2, "b\nc", [1]),
        chunk("a", 7, "z", [5]),
        chunk("c", 0, "y", [1]),
    ]
    merged = merge_neighbours(ranked, top_k=3)
    assert [h.doc_id for h in merged] == ["a", "b", "a"]
    first = merged[0]
    assert first.text == "b\nc\nd"  # the overlapping line once, in document order
    assert first.pages == [1, 2] and first.heading == "h2"
    assert first.chunk_id == "a:v:3"  # keeps the better-ranked chunk's place and id


class CountingEmbeddings:
    """Stands in for the embedding endpoint: the cache is what is under test, not the vectors."""

    dimension = 2

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts):
        self.texts += texts
        return np.ones((len(texts), self.dimension), dtype=np.float32)

    def embed_in_space(self, texts):
        return Embedded(self.embed(texts), "counting/fp32/2")


def test_query_vectors_are_cached_per_tenant():
    embeddings = CountingEmbeddings()
    cache = QueryVectorCache(embeddings)
    cache.vector("acme", "is acme planning layoffs?")
    assert cache.cached("acme", "is acme planning layoffs?") is not None
    # Another tenant asking the same words pays for its own vector: a shared entry would answer
    # it faster, telling it that someone else asked exactly this.
    assert cache.cached("beta", "is acme planning layoffs?") is None
    cache.vector("beta", "is acme planning layoffs?")
    cache.vector("acme", "is acme planning layoffs?")
    assert embeddings.texts == ["is acme planning layoffs?"] * 2
