"""Answers with citations: retrieve, decide whether to abstain, generate, number the citations.

A citation is built only from a sentence's ``sources``, which index the hits the generator was
handed; a passage that was not retrieved cannot be cited. Two gates decide abstention: the
retrieval confidence (the best cosine similarity between the question and the tenant's chunks,
under the same filters) and the generator's own judgement.

Every answer reports a ``confidence`` (0..1): the generator's own when it reports one (the
extractive generator: the share of the question's key terms its lead sentence covers), else the
retrieval confidence. A quote carries ``start``/``end``, its character offsets in the cited
passage's text (``hits[i].text[start:end] == quote``), so a page can highlight it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pydantic import BaseModel, Field

from datatorag.domain.employees import Employee
from datatorag.domain.errors import GenerationFailed, PermanentError, RetryableError
from datatorag.domain.models import SearchHit
from datatorag.ports import AnswerGenerator, AnswerSentence, Filters, Reranker
from datatorag.usecases.search import Found, Searcher

ABSTENTION = "The documents do not answer this question."


class Citation(BaseModel):
    doc_id: str
    title: str
    source_uri: str
    pages: list[int]
    quote: str
    chunk_id: str = Field(description="the cited passage: the hit with this chunk_id")
    start: int | None = Field(
        None, description="character offset of the quote in the passage's text (None: not found)"
    )
    end: int | None = Field(None, description="offset just past the quote (text[start:end])")
    applies_to: dict[str, list[str]] = {}  # whom the cited section is for; {} when not stated
    ocr_pages: list[int] = []  # of ``pages``, those read by OCR from a scan: check the quote


class Answer(BaseModel):
    answer: str
    abstained: bool
    confidence: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="0..1: the generator's support for the answer when it reports one, else "
        "the retrieval confidence (best cosine of the question to a passage)",
    )
    citations: list[Citation]
    hits: list[SearchHit]
    keyword_only: str | None = Field(
        default=None,
        description="why the passages were found by keywords alone (the tenant's index is in "
        "another embedding space until it is re-embedded); null normally",
    )


class Answerer:
    def __init__(
        self,
        searcher: Searcher,
        generator: AnswerGenerator,
        *,
        min_retrieval_score: float,
        reranker: Reranker | None = None,
        rerank_candidates: int = 20,
    ) -> None:
        self.searcher = searcher
        self.generator = generator
        self.min_retrieval_score = min_retrieval_score
        self.reranker = reranker
        self.rerank_candidates = rerank_candidates

    def confidence(self, tenant: str, question: str, filters: Filters | None = None) -> float:
        """Best cosine similarity of the question to the tenant's chunks (0.0 when none match).

        Exposed on its own so ``min_retrieval_score`` can be calibrated on a dev set.
        """
        vector = self.searcher.query_vectors.vector(tenant, question)
        best = self.searcher.index.vector_search(
            tenant, vector.values, 1, filters, space=vector.space
        )
        return best[0].score if best else 0.0

    def answer(
        self,
        tenant: str,
        question: str,
        top_k: int = 5,
        filters: Filters | None = None,
        employee: Employee | None = None,
    ) -> Answer:
        """Raises ``ValueError`` when ``filters`` and ``employee`` both decide applicability.

        When vector search had to be skipped (``Found.keyword_only``) there is no cosine to gate
        on: the generator alone decides whether the passages answer, and the answer says why.
        """
        found = self._retrieve(tenant, question, top_k, filters, employee)
        hits, retrieval = found.hits, found.best
        answer = self._answer(question, hits, retrieval)
        return answer.model_copy(update={"keyword_only": found.keyword_only})

    def _answer(self, question: str, hits: list[SearchHit], retrieval: float | None) -> Answer:
        if not hits or (retrieval is not None and retrieval < self.min_retrieval_score):
            return abstention(hits, retrieval or 0.0)
        try:
            generated = self.generator.generate(question, hits)
        except RetryableError as err:
            raise GenerationFailed(err, retryable=True) from err
        except PermanentError as err:
            raise GenerationFailed(err, retryable=False) from err
        confidence = generated.confidence
        if confidence is None:
            confidence = retrieval or 0.0
        if generated.abstained:
            return abstention(hits, confidence)
        return compose(generated.sentences, hits, confidence)

    def _retrieve(
        self,
        tenant: str,
        question: str,
        top_k: int,
        filters: Filters | None,
        employee: Employee | None,
    ) -> Found:
        """The hybrid search's passages for the employee (reranked from a wider pool when a
        reranker is set) and the retrieval confidence over the documents they may see."""
        if self.reranker is None:
            return self.searcher.hybrid(tenant, question, top_k, filters, employee=employee)
        pool = self.searcher.hybrid(
            tenant, question, max(top_k, self.rerank_candidates), filters, employee=employee
        )
        try:
            return replace(pool, hits=self.reranker.rerank(question, pool.hits, top_k))
        except RetryableError as err:
            raise GenerationFailed(err, retryable=True) from err
        except PermanentError as err:
            raise GenerationFailed(err, retryable=False) from err


def abstention(hits: list[SearchHit], confidence: float = 0.0) -> Answer:
    return Answer(
        answer=ABSTENTION, abstained=True, confidence=_unit(confidence), citations=[], hits=hits
    )


def _unit(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 3)


def compose(
    sentences: Sequence[AnswerSentence], hits: list[SearchHit], confidence: float = 0.0
) -> Answer:
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
        return abstention(hits, confidence)
    return Answer(
        answer=" ".join(parts),
        abstained=False,
        confidence=_unit(confidence),
        citations=citations,
        hits=hits,
    )


def _citation(hit: SearchHit, quote: str) -> Citation:
    start = hit.text.find(quote) if quote else -1
    return Citation(
        doc_id=hit.doc_id,
        title=hit.title,
        source_uri=hit.source_uri,
        pages=hit.pages,
        quote=quote,
        chunk_id=hit.chunk_id,
        start=start if start >= 0 else None,
        end=start + len(quote) if start >= 0 else None,
        applies_to=hit.applies_to,
        ocr_pages=hit.ocr_pages,
    )
