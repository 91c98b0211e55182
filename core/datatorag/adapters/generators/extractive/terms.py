"""Index terms: a light stemmer, and HR synonym phrases folded into one concept term."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from datatorag.adapters.generators.extractive.vocabulary import (
    GENERIC_TERMS,
    HR_SYNONYMS,
    NUMBER_WORDS,
    STOPWORDS,
)

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_NUMBER_WORD = re.compile(r"\b(?:" + "|".join(NUMBER_WORDS) + r")\b")
_FOUR_O_ONE_K = re.compile(r"\b(40[13])\s*(?:\(\s*([kb])\s*\)|([kb])\b)", re.I)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix stripper: "leaves"/"leave", "accrued"/"accrues", "taking"/"take" meet;
    a possessive is its noun ("Sourcegraph's"/"Sourcegraph")."""
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


@lru_cache(maxsize=1)
def _phrases() -> dict[str, list[tuple[tuple[str, ...], str]]]:
    """Synonym phrases as stemmed word tuples, by first word, longest first."""
    table: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for concept, phrases in HR_SYNONYMS.items():
        for phrase in phrases:
            words = tuple(stem(w) for w in _WORD.findall(_normalise(phrase)))
            table.setdefault(words[0], []).append((words, "@" + concept))
    for options in table.values():
        options.sort(key=lambda option: -len(option[0]))
    return table


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'").lower()
    text = _FOUR_O_ONE_K.sub(lambda m: m.group(1) + (m.group(2) or m.group(3)), text)
    return _NUMBER_WORD.sub(lambda m: NUMBER_WORDS[m.group(0)], text)


def terms(text: str, *, query: bool = False) -> list[str]:
    """Index terms of a text: stemmed content words, plus a concept term per synonym phrase.

    In a question a phrase stands for its concept alone: "vacation" asks for time off, and a
    passage that says "paid time off" answers it fully. A passage keeps the phrase's words too.
    """
    stems = [stem(w) for w in _WORD.findall(_normalise(text))]
    table = _phrases()
    out: list[str] = []
    done = 0  # stems before this index are in ``out`` already
    for i in [i for i, s in enumerate(stems) if s in table]:
        if i < done:
            continue  # inside a phrase found already
        size, concept = _phrase_at(stems, i, table)
        if not concept:
            continue
        out += [s for s in stems[done:i] if s not in _STOP_STEMS]
        out.append(concept)
        if not query:
            out += [s for s in stems[i : i + size] if s not in _STOP_STEMS]
        done = i + size
    out += [s for s in stems[done:] if s not in _STOP_STEMS]
    return out


def _phrase_at(
    stems: list[str], i: int, table: dict[str, list[tuple[tuple[str, ...], str]]]
) -> tuple[int, str]:
    """Length and concept of the synonym phrase starting at ``i`` (1 and "" when none)."""
    for words, concept in table.get(stems[i], ()):
        if tuple(stems[i : i + len(words)]) == words:
            return len(words), concept
    return 1, ""


_STOP_STEMS = frozenset(STOPWORDS | {stem(w) for w in STOPWORDS})
GENERIC_STEMS = frozenset(stem(w) for w in GENERIC_TERMS)
