"""Search and answers when the tenant's index and the questions are in different embedding
spaces: never compared, keywords instead, said so; a cached question vector of the old space is
embedded again once the tenant has moved. The index is the real embedded one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from datatorag.adapters.generators.extractive import ExtractiveGenerator
from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.ports import Embedded
from datatorag.usecases import search
from datatorag.usecases.answers import Answerer
from datatorag.usecases.search import Searcher
from tests.contracts.search_index import OTHER_SPACE, SPACE, TENANT, make_chunks, record, unit

pytestmark = pytest.mark.unit

QUESTION = "How many weeks of parental leave?"
TEXT = "Parental leave: every new parent gets 16 weeks of paid parental leave."


class SwitchableEmbeddings:
    """Stands in for the embedding endpoint: what is under test is how search treats the space
    each vector comes with, so every text gets one fixed vector, in the space set now."""

    dimension = 384

    def __init__(self, space: str) -> None:
        self.space = space
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_in_space(texts).vectors

    def embed_in_space(self, texts: Sequence[str]) -> Embedded:
        self.calls += 1
        vectors = np.asarray([unit(1) for _ in texts], dtype=np.float32)
        return Embedded(vectors, self.space)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[SqliteSearchIndex]:
    index = SqliteSearchIndex(tmp_path / "index")
    index.upsert_document(record("leave"))
    chunks = make_chunks("leave", "v1", [TEXT], [unit(1)])
    assert index.replace_chunks(TENANT, "leave", "v1", chunks, space=SPACE)
    yield index
    index.close()


def test_a_question_in_another_space_is_answered_by_keywords_and_flagged(
    index: SqliteSearchIndex,
) -> None:
    searcher = Searcher(index, SwitchableEmbeddings(OTHER_SPACE))
    found = searcher.find(TENANT, QUESTION, 5)
    assert [h.doc_id for h in found.hits] == ["leave"]
    assert found.best is None  # no cosine: the vectors were not compared
    assert found.keyword_only is not None and "datatorag reembed" in found.keyword_only
    assert searcher.find(TENANT, QUESTION, 5, mode="vector").keyword_only is not None
    # Keyword mode never needed vectors: nothing to flag.
    assert searcher.find(TENANT, QUESTION, 5, mode="keyword").keyword_only is None
    # The same space: hybrid as always.
    same = Searcher(index, SwitchableEmbeddings(SPACE)).find(TENANT, QUESTION, 5)
    assert same.keyword_only is None and same.best == pytest.approx(1.0, abs=1e-5)


def test_answers_in_keyword_only_mode_skip_the_cosine_gate_and_say_why(
    index: SqliteSearchIndex,
) -> None:
    searcher = Searcher(index, SwitchableEmbeddings(OTHER_SPACE))
    answerer = Answerer(searcher, ExtractiveGenerator(), min_retrieval_score=0.45)
    answer = answerer.answer(TENANT, QUESTION)
    assert not answer.abstained and "16 weeks" in answer.answer
    assert answer.keyword_only is not None


def test_a_cached_vector_of_the_old_space_is_embedded_again_after_the_move(
    index: SqliteSearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    embeddings = SwitchableEmbeddings(SPACE)
    searcher = Searcher(index, embeddings)
    assert searcher.find(TENANT, QUESTION, 5).keyword_only is None  # cached, in SPACE
    # The model changes and the tenant is re-embedded into its space.
    embeddings.space = OTHER_SPACE
    index.stage_vectors(TENANT, OTHER_SPACE, {"leave:v1:0": unit(1)})
    assert index.swap_space(TENANT, OTHER_SPACE) == []
    monkeypatch.setattr(search, "FRESH_S", 0.0)  # the cached vector counts as old
    calls = embeddings.calls
    found = searcher.find(TENANT, QUESTION, 5)
    assert found.keyword_only is None and found.best == pytest.approx(1.0, abs=1e-5)
    assert embeddings.calls == calls + 1
    cached = searcher.query_vectors.cached(TENANT, QUESTION)
    assert cached is not None and cached.space == OTHER_SPACE
