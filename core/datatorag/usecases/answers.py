"""Answers with citations: retrieve, decide whether to abstain, generate, number the citations.

A citation is built only from a sentence's ``sources``, which index the hits the generator was
handed; a passage that was not retrieved cannot be cited. Two gates decide abstention: the
retrieval confidence (the best cosine similarity between the question and the tenant's chunks,
under the same filters) and the generator's own judgement.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from datatorag.domain.errors import PermanentError, RetryableError
from datatorag.domain.models import SearchHit
from datatorag.ports import AnswerGenerator, AnswerSentence, Filters
from datatorag.usecases.search import Searcher

ABSTENTION = "The documents do not answer this question."


class Citation(BaseModel):
    doc_id: str
    title: str
    source_uri: str
    pages: list[int]
    quote: str
    ocr_pages: list[int] = []  # of ``pages``, those read by OCR from a scan: check the quote


class Answer(BaseModel):
    answer: str
    abstained: bool
    citations: list[Citation]
    hits: list[SearchHit]


class GenerationFailed(Exception):
    """The answer generator failed; ``retryable`` tells a busy model from a refusal."""

    def __init__(self, cause: Exception, *, retryable: bool) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.retryable = retryable


class Answerer:
    def __init__(
        self, searcher: Searcher, generator: AnswerGenerator, *, min_retrieval_score: float
    ) -> None:
        self.searcher = searcher
        self.generator = generator
        self.min_retrieval_score = min_retrieval_score

    def confidence(self, tenant: str, question: str, filters: Filters | None = None) -> float:
        """Best cosine similarity of the question to the tenant's chunks (0.0 when none match).

        Exposed on its own so ``min_retrieval_score`` can be calibrated on a dev set.
        """
        vector = self.searcher.query_vectors.vector(tenant, question)
        best = self.searcher.index.vector_search(tenant, vector, 1, filters)
        return best[0].score if best else 0.0

    def answer(
        self, tenant: str, question: str, top_k: int = 5, filters: Filters | None = None
    ) -> Answer:
        hits = self.searcher.search(tenant, question, top_k, "hybrid", filters)
        if not hits or self.confidence(tenant, question, filters) < self.min_retrieval_score:
            return abstention(hits)
        try:
            generated = self.generator.generate(question, hits)
        except RetryableError as err:
            raise GenerationFailed(err, retryable=True) from err
        except PermanentError as err:
            raise GenerationFailed(err, retryable=False) from err
        if generated.abstained:
            return abstention(hits)
        return compose(generated.sentences, hits)


def abstention(hits: list[SearchHit]) -> Answer:
    return Answer(answer=ABSTENTION, abstained=True, citations=[], hits=hits)


def compose(sentences: Sequence[AnswerSentence], hits: list[SearchHit]) -> Answer:
    """Answer text with ``[n]`` markers after each sentence; one citation per (passage, quote).

    Sources outside the hits are dropped, and so is a sentence left with none (the port's rule);
    an answer left with no sentence is an abstention.
    """
    numbers: dict[tuple[int, str], int] = {}
    citations: list[Citation] = []
    parts: list[str] = []
    for sentence in sentences:
        text = " ".join(sentence.text.split())
        cited = [
            (source, sentence.quotes[i] if i < len(sentence.quotes) else "")
            for i, source in enumerate(sentence.sources)
            if 0 <= source < len(hits)
        ]
        if not text or not cited:
            continue
        markers: list[int] = []
        for key in cited:
            if key not in numbers:
                numbers[key] = len(citations) + 1
                citations.append(_citation(hits[key[0]], key[1]))
            if numbers[key] not in markers:
                markers.append(numbers[key])
        parts.append(text + " " + "".join(f"[{n}]" for n in markers))
    if not parts:
        return abstention(hits)
    return Answer(answer=" ".join(parts), abstained=False, citations=citations, hits=hits)


def _citation(hit: SearchHit, quote: str) -> Citation:
    return Citation(
        doc_id=hit.doc_id,
        title=hit.title,
        source_uri=hit.source_uri,
        pages=hit.pages,
        quote=quote,
        ocr_pages=hit.ocr_pages,
    )
