"""Distinct distractor passages for the approximate-search benchmark (``bench/ann.py``).

Real HR sentences, new passages: every passage is 2 to 4 sentences of one Markdown handbook page
in ``../shared/corpus/docs/`` (the documents behind the 1x tenant's PDFs), first as sliding
windows of consecutive sentences within a section, then as random picks of sentences of one
page in their reading order; deduplicated by their normalised text. Each gets the page's title
as heading. Passages are short (about 40-80 tokens), so embedding 116k of them costs minutes,
not the hours of as many full chunks. They are grouped into synthetic documents
``distractor-<n>`` of ``PER_DOC`` passages. ``exclude`` leaves pages out: those of the dev
questions' answers (``gold_pages``), so that no distractor repeats a gold passage's sentences.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

PER_DOC = 20
MIN_WORDS = 4  # shorter "sentences" are headings, table cells, list stubs

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MARKUP = re.compile(r"[*_`>#|]+")
_BULLET = re.compile(r"^\s*(?:[-+*]|\d+[.)])\s+")


def sections(page: str) -> Iterator[tuple[str, list[str]]]:
    """(heading, sentences) of each section of a Markdown page: paragraphs (wrapped lines
    joined), list items and table rows each end a sentence."""
    heading, items, current = "", [], []  # type: ignore[var-annotated]
    for line in [*page.splitlines(), "# "]:
        starts_item = bool(_BULLET.match(line)) or line.lstrip().startswith("|")
        if not line.strip() or line.startswith("#") or starts_item:
            if current:
                items.append(" ".join(current))
            current = []
        if line.startswith("#"):
            text = " ".join(i if i.endswith((".", "!", "?", ":")) else i + "." for i in items)
            sentences = [
                s.strip() for s in _SENTENCE_END.split(text) if len(s.split()) >= MIN_WORDS
            ]
            if sentences:
                yield heading, sentences
            heading, items = line.lstrip("#").strip(), []
            continue
        cleaned = _MARKUP.sub("", _LINK.sub(r"\1", _BULLET.sub("", line))).strip()
        if cleaned:
            current.append(cleaned)


def gold_pages(corpus: Path) -> set[str]:
    """The pages (``<source>/<name>``) any dev question draws its answer from."""
    gold: set[str] = set()
    for line in (corpus / "questions-dev.jsonl").read_text().splitlines():
        if line.strip():
            question = json.loads(line)
            gold.update(question.get("doc_ids") or [])
            if question.get("evidence_doc"):
                gold.add(question["evidence_doc"])
    return gold


def passages(
    corpus: Path, count: int, seed: int = 0, exclude: frozenset[str] = frozenset()
) -> tuple[list[tuple[str, str]], int]:
    """``count`` distinct (heading, text) passages, windows first, then recombinations, of the
    pages not in ``exclude``; and how many are windows."""
    pages: list[tuple[str, list[tuple[str, list[str]]]]] = []
    for path in sorted((corpus / "docs").rglob("*.md")):
        if str(path.relative_to(corpus / "docs").with_suffix("")) in exclude:
            continue
        found = list(sections(path.read_text()))
        if found:
            pages.append((path.stem.replace("-", " "), found))
    seen: set[str] = set()
    out: list[tuple[str, str]] = []

    def add(title: str, heading: str, sentences: list[str]) -> None:
        text = " ".join(sentences)
        key = re.sub(r"\W+", " ", text.lower()).strip()
        if key not in seen and len(out) < count:
            seen.add(key)
            out.append((f"{title}: {heading}" if heading else title, text))

    for title, found in pages:
        for heading, sentences in found:
            for width in (2, 3, 4):
                for start in range(max(1, len(sentences) - width + 1)):
                    add(title, heading, sentences[start : start + width])
    windows = len(out)
    rng = random.Random(seed)
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 50 * count:
            raise ValueError(f"only {len(out)} distinct passages in {corpus}")
        title, found = rng.choice(pages)
        every = [s for _, sentences in found for s in sentences]
        if len(every) < 4:
            continue
        picked = sorted(rng.sample(range(len(every)), rng.randint(2, 4)))
        add(title, "", [every[i] for i in picked])
    return out, windows
