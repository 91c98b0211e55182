"""Behaviour suite for the ``Embeddings`` port.

Subclass ``EmbeddingsContract`` in a test module and provide an ``embeddings`` fixture that
returns the adapter under test, backed by the real model (all-MiniLM-L6-v2 or another
sentence-transformers model). The module sets the markers.
"""

from __future__ import annotations

import numpy as np

from datatorag.domain.spaces import check_space, space_dimension
from datatorag.ports import Embeddings

LEAVE_QUESTION = "How many weeks of paid parental leave do new parents get?"
LEAVE_PARAPHRASE = "What is the paid leave allowance for employees after having a baby?"
UNRELATED = "The compiler rejected the kernel because the register file overflowed."

# Over 256 word pieces: the model must truncate, not fail.
LONG_TEXT = " ".join(
    f"Section {i}: employees accrue paid time off at a rate set by their manager's policy."
    for i in range(80)
)
UNICODE_TEXTS = [
    "Congé parental : 16 semaines rémunérées à 100 %",
    "育児休業は最長で２年間取得できます。",
    "Elternzeit \u2013 Übersicht für Beschäftigte (§ 15 BEEG)",
    "🎉🍼👶 welcome baby!",
    "\u200b\u00a0zero-width and non-breaking spaces\u2028line separator",
    "",
]


def _check_matrix(vectors: np.ndarray, n: int, dimension: int) -> None:
    assert vectors.shape == (n, dimension)
    assert vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


class EmbeddingsContract:
    """Tests every ``Embeddings`` adapter passes; needs an ``embeddings`` fixture."""

    def test_is_an_embeddings_port(self, embeddings: Embeddings) -> None:
        assert isinstance(embeddings, Embeddings)

    def test_vectors_come_with_their_space(self, embeddings: Embeddings) -> None:
        texts = [LEAVE_QUESTION, UNRELATED]
        embedded = embeddings.embed_in_space(texts)
        np.testing.assert_allclose(embedded.vectors, embeddings.embed(texts), atol=1e-4)
        assert check_space(embedded.space) == embedded.space
        assert space_dimension(embedded.space) == embeddings.dimension
        assert embeddings.embed_in_space([UNRELATED]).space == embedded.space

    def test_dimension_matches_vectors(self, embeddings: Embeddings) -> None:
        dimension = embeddings.dimension
        assert isinstance(dimension, int) and dimension > 0
        assert embeddings.embed(["one text"]).shape == (1, dimension)

    def test_shape_dtype_and_unit_norm(self, embeddings: Embeddings) -> None:
        texts = [LEAVE_QUESTION, LEAVE_PARAPHRASE, UNRELATED]
        _check_matrix(embeddings.embed(texts), len(texts), embeddings.dimension)

    def test_order_follows_inputs(self, embeddings: Embeddings) -> None:
        forward = embeddings.embed([LEAVE_QUESTION, UNRELATED])
        backward = embeddings.embed([UNRELATED, LEAVE_QUESTION])
        np.testing.assert_allclose(forward[::-1], backward, atol=1e-3)

    def test_deterministic(self, embeddings: Embeddings) -> None:
        texts = [LEAVE_QUESTION, UNRELATED]
        np.testing.assert_allclose(embeddings.embed(texts), embeddings.embed(texts), atol=1e-6)

    def test_distinct_texts_get_distinct_vectors(self, embeddings: Embeddings) -> None:
        a, b = embeddings.embed([LEAVE_QUESTION, UNRELATED])
        assert float(a @ b) < 0.9

    def test_paraphrase_scores_higher_than_unrelated(self, embeddings: Embeddings) -> None:
        question, paraphrase, unrelated = embeddings.embed(
            [LEAVE_QUESTION, LEAVE_PARAPHRASE, UNRELATED]
        )
        assert float(question @ paraphrase) > float(question @ unrelated) + 0.2

    def test_empty_list(self, embeddings: Embeddings) -> None:
        vectors = embeddings.embed([])
        assert vectors.shape == (0, embeddings.dimension)
        assert vectors.dtype == np.float32

    def test_long_text_is_truncated_not_refused(self, embeddings: Embeddings) -> None:
        assert len(LONG_TEXT.split()) > 256
        vectors = embeddings.embed([LONG_TEXT, LEAVE_QUESTION])
        _check_matrix(vectors, 2, embeddings.dimension)

    def test_unicode_emoji_and_empty_strings(self, embeddings: Embeddings) -> None:
        vectors = embeddings.embed(UNICODE_TEXTS)
        _check_matrix(vectors, len(UNICODE_TEXTS), embeddings.dimension)

    def test_many_texts_in_one_call(self, embeddings: Embeddings) -> None:
        texts = [f"Policy clause {i}: reimbursement of travel expenses" for i in range(70)]
        _check_matrix(embeddings.embed(texts), len(texts), embeddings.dimension)
