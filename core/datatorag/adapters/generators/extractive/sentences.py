"""Passages cut into sentences: exact substrings; list items and table rows are sentences too."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from datatorag.adapters.generators.extractive.terms import terms
from datatorag.adapters.generators.extractive.vocabulary import ABBREVIATIONS
from datatorag.domain.models import SearchHit

_BOUNDARY = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+")
_LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022\u25aa\u25cf]|\(?\d{1,2}[.)]|\(?[a-z][.)])\s+")
_INITIALISM = re.compile(r"(?:\b[A-Za-z]\.){2,}$")
MIN_WORDS = 4  # shorter lines (headings, labels) are context, not answers
MIN_ITEM_WORDS = 3  # the same for list items; table rows always count


@dataclass(frozen=True)
class Sentence:
    """A sentence of a passage: its exact text (a substring of the passage) and where it lies."""

    passage: int
    position: int  # order within the passage
    text: str
    terms: tuple[str, ...]
    is_list_item: bool
    lead: frozenset[str]  # terms of the question, label or table header just before it
    is_candidate: bool  # can be an answer: not a question, a heading or a label
    header: str = ""  # a table row's header row, read with it
    start: int = 0  # where the text starts in the passage
    question_start: int = -1  # where the FAQ question just before it starts (-1: none)


def _sentence(
    passage: int,
    position: int,
    text: str,
    is_item: bool,
    lead: frozenset[str],
    labels: frozenset[str] = frozenset(),
    header: str = "",
    start: int = 0,
    question_start: int = -1,
) -> Sentence:
    words = terms(text)
    count = len(text.split())
    if text.rstrip().endswith("?") or text.strip().casefold() in labels:
        candidate = False  # a question, or the document's title or a heading: context only
    elif is_item:
        candidate = _is_row(text) or count >= MIN_ITEM_WORDS
    else:
        candidate = count >= MIN_WORDS
    return Sentence(
        passage,
        position,
        text,
        tuple(words),
        is_item,
        lead,
        candidate,
        header,
        start,
        question_start,
    )


def _is_row(text: str) -> bool:
    return "\t" in text or " | " in text


def split_sentences(text: str) -> Iterator[tuple[str, bool]]:
    """Sentences of a passage, exact substrings, in order; flags list items and table rows."""
    for line in text.splitlines():
        if not line.strip():
            continue
        if _LIST_ITEM.match(line) or _is_row(line):
            yield line.strip(), True
            continue
        yield from ((s, False) for s in _split_line(line))


def _split_line(line: str) -> Iterator[str]:
    start = 0
    for match in _BOUNDARY.finditer(line):
        end = match.end()
        if end >= len(line) or not _starts_sentence(line[end]):
            continue
        if _is_abbreviation(line[start : match.start() + 1]):
            continue
        piece = line[start:end].strip()
        if piece:
            yield piece
        start = end
    piece = line[start:].strip()
    if piece:
        yield piece


def _starts_sentence(char: str) -> bool:
    return char.isupper() or char.isdigit() or char in "\"'\u201c\u2018(["


def _is_abbreviation(text_to_stop: str) -> bool:
    """Whether the word ending at this full stop is an abbreviation ("e.g.", "U.S.", "Dr.")."""
    if not text_to_stop.endswith("."):
        return False
    word = text_to_stop.rsplit(None, 1)[-1] if text_to_stop.split() else ""
    if _INITIALISM.search(word):
        return True
    bare = word.rstrip(".").lstrip("(\"'").lower()
    return bare in ABBREVIATIONS or (len(bare) == 1 and bare.isalpha())


def sentences_of(passages: Sequence[SearchHit]) -> Iterator[Sentence]:
    """Every sentence of every passage; a table row carries its table's header row."""
    for p_index, passage in enumerate(passages):
        lead: frozenset[str] = frozenset()
        header = ""
        labels = frozenset(
            part.strip().casefold() for part in (passage.title, *passage.heading.split(" > "))
        )
        pieces = list(split_sentences(passage.text))
        cursor = 0
        question = -1  # where the question before this sentence starts, if one is
        for position, (text, is_item) in enumerate(pieces):
            start = passage.text.find(text, cursor)  # pieces are exact substrings, in order
            cursor = start + len(text)
            row = is_item and _is_row(text)
            if not row:
                header = ""
            elif not header:  # the first row of a table is its header: context for the rest
                following = pieces[position + 1] if position + 1 < len(pieces) else ("", False)
                if following[1] and _is_row(following[0]):
                    header = text
                    lead = frozenset(terms(text))
                    yield _sentence(
                        p_index, position, text, is_item, lead, frozenset({text.casefold()})
                    )
                    continue
            sentence = _sentence(
                p_index,
                position,
                text,
                is_item,
                lead,
                labels,
                header if row else "",
                start,
                question,
            )
            yield sentence
            if row and header:
                continue  # every row of the table keeps the header's terms as its lead
            # A question or a label hands its terms to the sentence after it (FAQ answers).
            lead = frozenset(sentence.terms) if not sentence.is_candidate else frozenset()
            question = start if text.rstrip().endswith("?") else -1
