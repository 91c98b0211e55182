"""The extractive generator: the lead sentence that states the fact, then up to two more in
reading order, each quoting itself."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from datatorag.adapters.generators.extractive.scorer import Scorer
from datatorag.adapters.generators.extractive.sentences import Sentence
from datatorag.domain.models import SearchHit
from datatorag.ports import AnswerSentence, GeneratedAnswer

# Below this share of the question's weighted terms, no sentence is taken as an answer. Low on
# purpose: it turns away passages that share no real term with the question (or only generic
# words); calibrate it on a dev set with ``support``.
DEFAULT_MIN_SUPPORT = 0.15
FOLLOWER_SHARE = 0.3  # a further sentence must score at least this share of the best one
REDUNDANT_OVERLAP = 0.7  # Jaccard overlap above which a further sentence repeats a chosen one
# The lead is quoted with its paragraph and the paragraphs after it, up to this many characters
# (measured in docs/benchmarks.md: evidence in the answer against answer length).
QUOTE_CAP = 800
LIST_LINE = 80  # a list item quoted with its list is a short line that ends no sentence
# A question that compares may be answered from two documents; any other keeps to one.
_COMPARES = re.compile(
    r"\b(?:compare[sd]?|comparison|differ(?:s|ence|ent)?|versus|vs\.?|both|between\b.+\band)\b",
    re.I,
)


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
        chosen = self._choose(scored, passages, compares=_COMPARES.search(question) is not None)
        if not chosen:
            return GeneratedAnswer(sentences=(), abstained=True, confidence=scored.support())
        lead, rest = chosen[0], sorted(chosen[1:], key=lambda s: (s.passage, s.position))
        spans = [_span(run, passages) for run in _runs([lead, *rest])]
        spans[0] = _paragraph(spans[0], passages)
        spans = [spans[0], *(s for s in spans[1:] if not _within(s, spans[0]))]
        return GeneratedAnswer(
            sentences=tuple(_answer_sentence(span, passages) for span in spans),
            abstained=False,
            confidence=round(scored.coverage(lead), 3),
        )

    def support(self, question: str, passages: Sequence[SearchHit]) -> float:
        """Share (0..1) of the question's weighted terms that the best sentence covers, among
        the sentences that state the kind of fact asked for."""
        return Scorer(question, passages).support()

    def _choose(
        self, scored: Scorer, passages: Sequence[SearchHit], *, compares: bool
    ) -> list[Sentence]:
        """The lead: the best-scoring sentence that covers enough of the question's terms and
        states the kind of fact asked; then up to two more from the same document (any document
        when the question compares), in score order."""
        qualified = [
            i
            for i, s in enumerate(scored.sentences)
            if scored.scores[i] > 0 and scored.fits[i] and scored.coverage(s) >= self.min_support
        ]
        if not qualified:
            return []
        top = max(qualified, key=lambda i: (scored.scores[i], -i))
        best = scored.sentences[top]
        policy = passages[best.passage].doc_id
        chosen = [best, *self._list_after(scored, top)]
        ranked = sorted(
            (i for i, s in enumerate(scored.scores) if s > 0 and i != top),
            key=lambda i: (-scored.scores[i], i),
        )
        for index in ranked:
            if len(chosen) >= self.max_sentences:
                break
            if scored.scores[index] < FOLLOWER_SHARE * scored.scores[top]:
                break
            candidate = scored.sentences[index]
            if not compares and passages[candidate.passage].doc_id != policy:
                continue  # one policy per answer: another document's rule is not blended in
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


def _runs(sentences: list[Sentence]) -> list[list[Sentence]]:
    """Sentences that follow one another in a passage read as one quote (the lead's run first);
    a table row stands alone, read with its header."""
    runs: list[list[Sentence]] = []
    for sentence in sentences:
        for run in runs if not sentence.header else ():
            if run[0].header:
                continue
            first, last = run[0], run[-1]
            if sentence.passage == last.passage and sentence.position == last.position + 1:
                run.append(sentence)
                break
            if sentence.passage == first.passage and sentence.position == first.position - 1:
                run.insert(0, sentence)
                break
        else:
            runs.append([sentence])
    return runs


@dataclass(frozen=True)
class _Span:
    """Where a quote lies: its passage and character range; ``header`` for a table row."""

    passage: int
    begin: int
    end: int
    header: str = ""


def _span(run: list[Sentence], passages: Sequence[SearchHit]) -> _Span:
    first, last = run[0], run[-1]
    begin = first.question_start if first.question_start >= 0 else first.start  # FAQ: Q and A
    header = first.header if len(run) == 1 else ""
    return _Span(first.passage, begin, last.start + len(last.text), header)


def _paragraph(span: _Span, passages: Sequence[SearchHit]) -> _Span:
    """The lead quoted with the rest of its paragraph (a line of the passage) and the
    paragraphs after it, while the quote stays within ``QUOTE_CAP`` characters: the fact asked
    for is often the sentence after the one that matches the question's words. A list item
    starts from its list's introducing line; the quote stops before a question (a FAQ's next
    item); a table row, or a paragraph longer than the cap, stays as it is."""
    if span.header:
        return span
    text = passages[span.passage].text
    begin = _list_start(text, text.rfind("\n", 0, span.begin) + 1)
    end = _line_end(text, span.end)
    if end - begin > QUOTE_CAP:
        begin = text.rfind("\n", 0, span.begin) + 1
    if end - begin > QUOTE_CAP:
        return span
    while end < len(text) and _line_end(text, end + 1) - begin <= QUOTE_CAP:
        if text[end + 1 : _line_end(text, end + 1)].rstrip().endswith("?"):
            break  # a FAQ's next question: another answer starts there
        end = _line_end(text, end + 1)
    return _Span(span.passage, begin, end)


def _list_start(text: str, begin: int) -> int:
    """Where the list that the line at ``begin`` belongs to starts: its introducing line (one
    that ends with ":"), found above short lines that end no sentence; ``begin`` when the line
    is in no such list."""
    if not _list_like(text[begin : _line_end(text, begin)]):
        return begin
    cursor = begin
    while cursor > 0:
        start = text.rfind("\n", 0, cursor - 1) + 1
        line = text[start : cursor - 1].rstrip()
        if line.endswith(":"):
            return start
        if not _list_like(line):
            return begin
        cursor = start
    return begin


def _list_like(line: str) -> bool:
    return len(line.strip()) <= LIST_LINE and not line.rstrip().endswith((".", "?", "!"))


def _line_end(text: str, index: int) -> int:
    end = text.find("\n", index)
    return len(text) if end < 0 else end


def _within(inner: _Span, outer: _Span) -> bool:
    return inner.passage == outer.passage and outer.begin <= inner.begin and inner.end <= outer.end


def _answer_sentence(span: _Span, passages: Sequence[SearchHit]) -> AnswerSentence:
    """A quote as the passage has it; a table row is read with its header row."""
    quote = passages[span.passage].text[span.begin : span.end].strip()
    text = f"{_cells(quote)} (columns: {_cells(span.header)})" if span.header else quote
    return AnswerSentence(text, (span.passage,), (quote,))


def _cells(row: str) -> str:
    return " | ".join(cell.strip() for cell in row.split("\t") if cell.strip())


def _redundant(a: Sentence, b: Sentence) -> bool:
    if a.text == b.text:
        return True
    union = set(a.terms) | set(b.terms)
    return bool(union) and len(set(a.terms) & set(b.terms)) / len(union) > REDUNDANT_OVERLAP
