"""The extractive generator: the best-scoring sentences, in reading order, each quoting itself."""

from __future__ import annotations

from collections.abc import Sequence

from datatorag.adapters.generators.extractive.scorer import Scorer
from datatorag.adapters.generators.extractive.sentences import Sentence
from datatorag.domain.models import SearchHit
from datatorag.ports import AnswerSentence, GeneratedAnswer

# Below this share of the question's weighted terms, no sentence is taken as an answer. Low on
# purpose: it turns away passages that share no real term with the question (or only generic
# words); calibrate it on a dev set with ``support``.
DEFAULT_MIN_SUPPORT = 0.15
FOLLOWER_SHARE = 0.5  # a further sentence must score at least this share of the best one
REDUNDANT_OVERLAP = 0.7  # Jaccard overlap above which a further sentence repeats a chosen one


class ExtractiveGenerator:
    """Answers with the passages' best-matching sentences; abstains when support is too low."""

    def __init__(self, *, min_support: float = DEFAULT_MIN_SUPPORT, max_sentences: int = 3) -> None:
        if not 0.0 <= min_support <= 1.0:
            raise ValueError("min_support is a share of the question's terms, from 0 to 1")
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        self.min_support = min_support
        self.max_sentences = max_sentences

    def generate(self, question: str, passages: Sequence[SearchHit]) -> GeneratedAnswer:
        scored = Scorer(question, passages)
        if not scored.sentences or scored.support() < self.min_support:
            return GeneratedAnswer(sentences=(), abstained=True)
        chosen = self._choose(scored)
        if not chosen:
            return GeneratedAnswer(sentences=(), abstained=True)
        chosen.sort(key=lambda s: (s.passage, s.position))
        return GeneratedAnswer(
            sentences=tuple(AnswerSentence(s.text, (s.passage,), (s.text,)) for s in chosen),
            abstained=False,
        )

    def support(self, question: str, passages: Sequence[SearchHit]) -> float:
        """Share (0..1) of the question's weighted terms that the best sentence covers."""
        return Scorer(question, passages).support()

    def _choose(self, scored: Scorer) -> list[Sentence]:
        ranked = sorted(
            (i for i, s in enumerate(scored.scores) if s > 0),
            key=lambda i: (-scored.scores[i], i),
        )
        if not ranked:
            return []
        best = scored.sentences[ranked[0]]
        chosen = [best, *self._list_after(scored, ranked[0])]
        for index in ranked[1:]:
            if len(chosen) >= self.max_sentences:
                break
            if scored.scores[index] < FOLLOWER_SHARE * scored.scores[ranked[0]]:
                break
            candidate = scored.sentences[index]
            if not any(_redundant(candidate, c) for c in chosen):
                chosen.append(candidate)
        return chosen[: self.max_sentences]

    def _list_after(self, scored: Scorer, index: int) -> list[Sentence]:
        """A sentence that introduces a list ("...as follows:") brings its first items along."""
        sentence = scored.sentences[index]
        if not sentence.text.rstrip().endswith(":"):
            return []
        items = []
        for follower in scored.sentences[index + 1 : index + self.max_sentences]:
            if follower.passage != sentence.passage or not follower.is_list_item:
                break
            items.append(follower)
        return items


def _redundant(a: Sentence, b: Sentence) -> bool:
    if a.text == b.text:
        return True
    union = set(a.terms) | set(b.terms)
    return bool(union) and len(set(a.terms) & set(b.terms)) / len(union) > REDUNDANT_OVERLAP
