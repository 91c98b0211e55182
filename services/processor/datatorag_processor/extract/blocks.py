"""Helpers every format shares: list markers, whitespace, heading paths."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from datatorag_processor.extract.model import Block

# A bullet, dash or number/letter that starts a list item ("•", "◦", "-", "1.", "a)", "(iv)").
LIST_MARKER = re.compile(
    r"^\s*(?:[•◦▪▫‣\u2043∙●○■□➢►▸✓✔\-*+\u2013\u2014·]|(?:\d{1,2}|[a-zA-Z]|[ivxIVX]{1,4})[.)]"
    r"|\((?:\d{1,2}|[a-zA-Z]|[ivxIVX]{1,4})\))\s+"
)
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufeff\ufffe\uffff]")


def strip_marker(text: str) -> tuple[bool, str]:
    """Whether ``text`` starts with a list marker, and the text without it."""
    match = LIST_MARKER.match(text)
    if match and match.end() < len(text):
        return True, text[match.end() :]
    return False, text


def clean(text: str) -> str:
    """Collapse runs of spaces, drop control characters, trim each line."""
    text = _CONTROL.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def with_heading_paths(blocks: Iterable[Block]) -> tuple[Block, ...]:
    """Fill ``headings`` of every block from the headings before it (a heading gets its parents)."""
    stack: list[tuple[int, str]] = []
    out: list[Block] = []
    for block in blocks:
        if block.kind == "heading":
            while stack and stack[-1][0] >= block.level:
                stack.pop()
            out.append(dataclasses.replace(block, headings=tuple(t for _, t in stack)))
            stack.append((block.level, block.text.replace("\n", " ")))
        else:
            out.append(dataclasses.replace(block, headings=tuple(t for _, t in stack)))
    return tuple(out)


def first_heading(blocks: Iterable[Block]) -> str | None:
    for block in blocks:
        if block.kind == "heading":
            return block.text.replace("\n", " ")
    return None


def table_rows(
    rows: list[list[str]], page: int | None = None, header: tuple[str, ...] = ()
) -> list[Block]:
    """Table rows as blocks; the first row is the header unless ``header`` is given."""
    blocks: list[Block] = []
    for row in rows:
        cells = tuple(clean(cell).replace("\n", " ") for cell in row)
        if not any(cells):
            continue
        blocks.append(Block("table_row", "\t".join(cells), page=page, cells=cells, header=header))
        if not header:
            header = cells
    return blocks


def human_size(n: int) -> str:
    """A byte count as people read it: 9.8 kB, 50.0 MB."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
