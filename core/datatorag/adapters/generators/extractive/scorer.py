"""BM25 of every candidate sentence against the question, with the support measure."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from datatorag.adapters.generators.extractive.answer_type import expected_type, states
from datatorag.adapters.generators.extractive.sentences import Sentence, sentences_of
from datatorag.adapters.generators.extractive.terms import GENERIC_STEMS, terms
from datatorag.domain.models import SearchHit

K1 = 1.2
B = 0.75
RANK_DECAY = 0.15  # a sentence from the passage ranked r counts 1 / (1 + RANK_DECAY * r)
CONTEXT_WEIGHT = 0.4  # title and heading terms count this much in a sentence's score
LEAD_WEIGHT = 0.7  # terms of the question or label just before a sentence count this much
SPREAD_DISCOUNT = 0.75  # a term found in every passage keeps a quarter of its weight
TYPE_BONUS = 1.3  # a sentence stating the kind of fact asked ("how much": an amount) gains this
TYPE_PENALTY = 0.5  # and one that states none keeps this share of its score
GENERIC_WEIGHT = 0.3  # a GENERIC_TERMS word weighs this share of a specific word


class Scorer:
    """BM25 of every candidate sentence against the question, over the passages handed in.

    A term's weight is its inverse sentence frequency, lowered when it occurs in most passages
    (the employer's name in every passage says nothing about which sentence answers). A term
    missing from the sentence still counts, partly, when the question or label just before it
    (a FAQ's "Q. ...?") or its passage's title and heading carry it.
    """

    def __init__(self, question: str, passages: Sequence[SearchHit]) -> None:
        self.query = list(dict.fromkeys(terms(question, query=True)))
        self.kind = expected_type(question)
        every = list(sentences_of(passages))
        self.sentences = [s for s in every if s.is_candidate]
        self.context = [frozenset(terms(f"{p.title} {p.heading}")) for p in passages]
        self.idf, self.weight = self._weights(every, passages)
        self.total_idf = sum(self.idf.values())
        lengths = [len(s.terms) for s in self.sentences]
        self.avg_length = (sum(lengths) / len(lengths)) if lengths else 1.0
        # whether each sentence states the kind of fact the question asks for (set by _score)
        self.fits = [False] * len(self.sentences)
        self.scores = [self._score(i, s) for i, s in enumerate(self.sentences)]

    def _weights(
        self, every: list[Sentence], passages: Sequence[SearchHit]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Each question term's rarity among the sentences, and that rarity after the discount."""
        n = len(every)
        query = set(self.query)
        df: Counter[str] = Counter()
        in_passage: list[set[str]] = [set(c & query) for c in self.context]
        for sentence in every:
            present = query.intersection(sentence.terms)
            df.update(present)
            in_passage[sentence.passage].update(present)
        pf: Counter[str] = Counter(t for found in in_passage for t in found)
        spread = max(len(passages), 1)
        idf = {
            t: math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            * (GENERIC_WEIGHT if t in GENERIC_STEMS else 1.0)
            for t in self.query
        }
        weight = {t: idf[t] * (1 - SPREAD_DISCOUNT * pf[t] / spread) for t in self.query}
        return idf, weight

    def _score(self, index: int, sentence: Sentence) -> float:
        counts = Counter(sentence.terms)
        norm = K1 * (1 - B + B * len(sentence.terms) / (self.avg_length or 1.0))
        score = 0.0
        for term in self.query:
            tf = counts.get(term, 0)
            if tf:
                score += self.weight[term] * tf * (K1 + 1) / (tf + norm)
            else:
                score += self.weight[term] * self._borrowed(term, sentence)
        if score > 0:  # (the kind of fact is read only where the words match: it costs)
            self.fits[index] = states(self.kind, sentence.text)
            score *= TYPE_BONUS if self.fits[index] else TYPE_PENALTY
        return score / (1 + RANK_DECAY * sentence.passage)

    def _borrowed(self, term: str, sentence: Sentence) -> float:
        if term in sentence.lead:
            return LEAD_WEIGHT
        if term in self.context[sentence.passage]:
            return CONTEXT_WEIGHT
        return 0.0

    def coverage(self, sentence: Sentence) -> float:
        """Weighted share of the question's terms the sentence (or its lead and context) holds.

        Weighted by rarity among the sentences only: the spread discount steers the choice
        between passages, but every question term counts toward whether an answer exists.
        """
        present = set(sentence.terms)
        if self.total_idf <= 0 or not (present | sentence.lead).intersection(self.query):
            return 0.0  # title and heading terms alone do not make a sentence an answer
        covered = sum(
            self.idf[t] * (1.0 if t in present else self._borrowed(t, sentence)) for t in self.query
        )
        return covered / self.total_idf

    def support(self) -> float:
        """The best coverage among sentences that state the kind of fact asked for."""
        fitting = (s for s, fit in zip(self.sentences, self.fits, strict=True) if fit)
        return max((self.coverage(s) for s in fitting), default=0.0)
