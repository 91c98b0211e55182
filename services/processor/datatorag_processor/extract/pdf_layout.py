"""From PDF text lines to blocks: running headers/footers, headings, paragraphs, list items."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from datatorag_processor.extract.blocks import strip_marker
from datatorag_processor.extract.model import Block, BlockKind
from datatorag_processor.extract.pdf_lines import LINE_END_HYPHEN, Line, fix_surrogates
from datatorag_processor.extract.pdf_tables import Table

TOP_ZONE = 0.075  # share of the page height where running headers sit
BOTTOM_ZONE = 0.07
REPEATED_ZONE = 0.05  # how much further in a line repeated on most pages still counts as running
_PAGE_NUMBER = re.compile(
    r"^(?:page\s*)?#+(?:\s*(?:of|/)\s*#+)?$|\bpage\s*#+\s*(?:of|/)\s*#+(?!\w)|(?:^|\s)#+\s*/\s*#+$",
    re.IGNORECASE,
)
_DATE_TIME = re.compile(r"^#+/#+/#+,?\s+#+:#+(?:\s*[ap]m)?\b", re.IGNORECASE)
_URL = re.compile(r"^(?:file|https?)://\S+(?:\s+#+\s*/\s*#+)?$", re.IGNORECASE)
_PARAGRAPH_END = re.compile(r"[.!?:]['\"\u201d\u2019)]*$")
_HYPHEN_SPLIT = re.compile(r"(\w+)[" + LINE_END_HYPHEN + r"]\s*(\w+)")
# A numbered clause ("4.2 The employee...", "10.1.3 ..."): Word sets its wrapped lines under the
# text, not under the number (a hanging indent), and the number is part of the text.
_CLAUSE = re.compile(r"^\d{1,3}(?:\.\d{1,3})+\.?\s")


@dataclass
class PageLines:
    number: int
    height: float
    lines: list[Line]
    tables: list[Table] = field(default_factory=list)


# -- running headers and footers -------------------------------------------------------------


def _shape(text: str) -> str:
    """A line with digits masked, so "Page 3 of 7" and "Page 4 of 7" look the same."""
    return re.sub(r"\s+", " ", re.sub(r"\d+", "#", text.lower())).strip()


def _zone(line: Line, height: float, wide: float = 0.0) -> str | None:
    """ "top" or "bottom" when the line sits in a page margin (``wide`` widens both zones)."""
    if line.y < (TOP_ZONE + wide) * height + line.size * 0.5:
        return "top"
    if line.y > (1 - BOTTOM_ZONE - wide) * height:
        return "bottom"
    return None


def drop_running_lines(pages: Sequence[PageLines], title: str | None, body_size: float) -> int:
    """Remove headers and footers: page numbers, dates, file URLs, lines repeated on every page.

    A line repeated on most pages, the first included, counts as running a little further in
    (``REPEATED_ZONE``): a Word template's header may sit 2 cm down and have two lines. (A table's
    header row repeated atop its continuation pages is not on the first page's margin.)
    """
    narrow, wide = _margin_lines(pages, 0.0), _margin_lines(pages, REPEATED_ZONE)
    on_first = set(_margin_lines(pages[:1], REPEATED_ZONE))
    needed = max(2, round(0.4 * len(pages)))
    low_title = (title or "").lower().strip()
    dropped = 0
    for page in pages:
        kept = []
        for line in page.lines:
            zone = _zone(line, page.height)
            far = _zone(line, page.height, REPEATED_ZONE)
            if zone:
                running = _running(
                    line, narrow[(zone, _shape(line.text))] >= needed, low_title, body_size
                )
            else:
                key = (far or "", _shape(line.text))
                running = bool(far) and wide[key] >= needed and key in on_first
            if running:
                dropped += 1
                continue
            kept.append(line)
        page.lines = kept
    return dropped


def _margin_lines(pages: Sequence[PageLines], wide: float) -> Counter[tuple[str, str]]:
    """On how many pages each (zone, line shape) occurs in a margin zone."""
    seen: Counter[tuple[str, str]] = Counter()
    for page in pages:
        seen.update(
            {(z, _shape(ln.text)) for ln in page.lines if (z := _zone(ln, page.height, wide))}
        )
    return seen


def _running(line: Line, repeated: bool, title: str, body_size: float) -> bool:
    shape = _shape(line.text)
    if repeated or _PAGE_NUMBER.search(shape) or _DATE_TIME.match(shape) or _URL.match(shape):
        return True
    # A running title: smaller than the body text, beside the date or the organisation name.
    text = line.text.lower()
    small = line.size < 0.95 * body_size
    return bool(title) and small and (text.startswith(title) or text.endswith(title))


# -- document-wide measures --------------------------------------------------------------------


def body_size(pages: Iterable[PageLines], skip: set[int] | None = None) -> float:
    """The font size that most characters have (leaving out the lines in ``skip``)."""
    sizes: Counter[float] = Counter()
    for page in pages:
        for line in page.lines:
            if skip and id(line) in skip:
                continue
            sizes[round(line.size * 2) / 2] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 10.0


def line_pitch(pages: Iterable[PageLines], size: float) -> float:
    """The usual distance between baselines of two lines of one paragraph at ``size``."""
    steps: Counter[float] = Counter()
    for page in pages:
        for a, b in zip(page.lines, page.lines[1:], strict=False):
            if abs(a.size - size) < 0.5 and abs(b.size - size) < 0.5 and abs(a.x0 - b.x0) < size:
                dy = b.y - a.y
                if 0.8 * size < dy < 2.5 * size:
                    steps[round(dy * 4) / 4] += 1
    return steps.most_common(1)[0][0] if steps else 1.2 * size


def vocabulary(pages: Iterable[PageLines]) -> set[str]:
    """Lower-case words of the document's multi-word lines (broken word parts stand alone)."""
    words: set[str] = set()
    for page in pages:
        for line in page.lines:
            tokens = line.text.split()
            if len(tokens) > 1:
                words.update(re.sub(r"^\W+|\W+$", "", t.lower()) for t in tokens)
    return words


# -- blocks -------------------------------------------------------------------------------------


@dataclass
class _Draft:
    kind: BlockKind
    lines: list[Line]
    marker: bool = False  # starts with a list marker or a clause number: wraps hang under it


class Assembler:
    """Walks the pages' lines and tables in reading order and cuts them into blocks."""

    def __init__(self, pages: Sequence[PageLines], body: float, pitch: float, vocab: set[str]):
        self.body = body
        # more than this many font sizes between baselines starts a new paragraph
        self.gap_ratio = 1.1 * pitch / body
        self.vocab = vocab
        self.pages = pages
        self.out: list[Block] = []
        self.draft: _Draft | None = None
        self.heading_keys: list[tuple[float, bool, bool]] = []  # size, bold, upright
        self.last_table: tuple[tuple[str, ...], int] | None = None  # header, column count
        self.body_family, self.heading_families = _families(pages, body)
        self.table_open = False

    def run(self) -> list[Block]:
        for page in self.pages:
            pending = {id(t): t for t in page.tables}
            owner = {line_id: t for t in page.tables for line_id in t.lines}
            text_lines = [line for line in page.lines if id(line) not in owner]
            bases = _column_bases(text_lines)
            right = _right_edges(text_lines, self.body)
            first_item = True
            for line in page.lines:
                table = owner.get(id(line))
                if table is not None:
                    if id(table) in pending:
                        self._table(pending.pop(id(table)), first_item)
                        first_item = False
                    continue
                self._line(line, bases.get(id(line), line.x0), right.get(id(line), line.x1))
                first_item = False
                self.table_open = False
            for table in pending.values():
                self._table(table, first_item)
                first_item = False
        self._flush()
        return _set_levels(self.out, self.heading_keys)

    # lines

    def _line(self, line: Line, base: float, right: float) -> None:
        heading = self._heading_like(line)
        marker = strip_marker(line.text)[0] or _CLAUSE.match(line.text) is not None
        indented = line.x0 - base > 0.8 * line.size
        draft = self.draft
        if draft is not None and self._continues(draft, line, heading, marker, right):
            draft.lines.append(line)
            return
        self._flush()
        kind: BlockKind
        if heading:
            kind = "heading"
        elif line.mono:
            kind = "code"
        elif marker or indented:
            kind = "list_item"
        else:
            kind = "paragraph"
        self.draft = _Draft(kind, [line], marker)

    def _heading_like(self, line: Line) -> bool:
        if len(line.text) > 160 or not any(c.isalpha() for c in line.text):
            return False
        if line.size >= 1.12 * self.body:
            return True
        if line.size < 0.95 * self.body:
            return False
        draft = self.draft
        if line.text[:1].islower() and draft is not None and draft.kind != "heading":
            return False  # at body size, a line going on with a lower-case word is no title
        family = _family(line.font)
        return line.bold or (family != self.body_family and family in self.heading_families)

    def _continues(
        self, draft: _Draft, line: Line, heading: bool, marker: bool, right: float
    ) -> bool:
        last = draft.lines[-1]
        if marker or heading != (draft.kind == "heading"):
            return False
        resized = abs(line.size - last.size) > 0.08 * last.size and not (line.mono or last.mono)
        if resized or (heading and line.bold != last.bold):
            return False
        same_flow = line.page == last.page and line.y > last.y
        if not same_flow:
            # A page break inside a paragraph: it goes on in lower case ("; any request...").
            return (
                draft.kind in ("paragraph", "list_item")
                and not _PARAGRAPH_END.search(last.text)
                and line.text[:1].islower()
            )
        # A code span in another font makes its line taller.
        slack = 1.3 if line.mono != last.mono else 1.0
        if line.y - last.y > slack * self.gap_ratio * max(line.size, last.size):
            return False
        if draft.kind == "heading":
            return len(draft.lines) < 4
        if draft.kind == "code":
            return line.mono
        first = draft.lines[0]
        if draft.kind in ("list_item", "paragraph") and draft.marker:
            hanging = line.x0 > first.x0 + 0.3 * line.size
            aligned = abs(line.x0 - last.x0) < 0.8 * line.size
            return (hanging or aligned) and _wrapped(last, line, right)
        return abs(line.x0 - last.x0) < 0.8 * line.size and _wrapped(last, line, right)

    def _flush(self) -> None:
        draft, self.draft = self.draft, None
        if draft is None:
            return
        text = self._join(draft)
        if not text:
            return
        if draft.kind in ("list_item", "paragraph"):
            _, text = strip_marker(text)
        first = draft.lines[0]
        level = 0
        if draft.kind == "heading" and first.size < 1.12 * self.body and _emphasis(draft, text):
            draft.kind = "paragraph"
        if draft.kind == "heading":
            level = -1  # set once every heading size is known
            upright = not re.search(r"italic|oblique", first.font, re.IGNORECASE)
            self.heading_keys.append((round(first.size * 2) / 2, first.bold, upright))
        self.out.append(Block(draft.kind, text, page=first.page, level=level))

    def _join(self, draft: _Draft) -> str:
        sep = "\n" if draft.kind == "code" else " "
        text = ""
        for line in draft.lines:
            part = line.text
            if text and _hyphen_end(text) and part[:1].isalnum():
                text += part  # a hyphen at the end of a line joins its parts
            else:
                text = f"{text}{sep}{part}" if text else part
        return self._hyphens(fix_surrogates(text)).strip()

    def _hyphens(self, text: str) -> str:
        """pdfium marks a hyphen at a line end; keep it unless the joined word is used elsewhere."""

        def fix(match: re.Match[str]) -> str:
            a, b = match.group(1), match.group(2)
            if (a + b).lower() in self.vocab and f"{a}-{b}".lower() not in self.vocab:
                return a + b
            return f"{a}-{b}"

        text = _HYPHEN_SPLIT.sub(fix, text)
        return text.replace("\ufffe", "-").replace("\x02", "-")

    # tables

    def _table(self, table: Table, first_on_page: bool) -> None:
        self._flush()
        rows = [[self._hyphens(fix_surrogates(c)) for c in row] for row in table.rows]
        header: tuple[str, ...] = ()
        width = max(len(r) for r in rows)
        last = self.last_table
        if first_on_page and self.table_open and last and width <= len(last[0]) + 1:
            # The table goes on from the previous page: same header, maybe a row cut in two.
            header = last[0]
            if _same_row(rows[0], header):
                rows = rows[1:]  # the header row repeated on the next page
            if rows and _row_goes_on(rows[0]) and self.out and self.out[-1].kind == "table_row":
                self._merge_into_last(rows.pop(0))
        for row in rows:
            cells = tuple(row)
            if not any(cells):
                continue
            self.out.append(
                Block("table_row", "\t".join(cells), page=table.page, cells=cells, header=header)
            )
            if not header:
                header = cells
        self.last_table = (header, width)
        self.table_open = True

    def _merge_into_last(self, row: list[str]) -> None:
        """A row cut by a page break: its second part is added to its first."""
        last = self.out.pop()
        cells = tuple(
            " ".join(p for p in (a, b) if p) for a, b in zip(last.cells, row, strict=False)
        )
        self.out.append(
            Block("table_row", "\t".join(cells), page=last.page, cells=cells, header=last.header)
        )


def _emphasis(draft: _Draft, text: str) -> bool:
    """A bold or heading-font passage at body size that reads as a sentence, not a title."""
    return len(draft.lines) > 2 or bool(re.search(r"[.!?;]['\"\u201d\u2019)]*$", text))


def _family(font: str) -> str:
    return font.split("-", 1)[0].split(",", 1)[0]


def _families(pages: Sequence[PageLines], body: float) -> tuple[str, set[str]]:
    """The body text's font family and the families that large headings use."""
    chars: Counter[str] = Counter()
    heading: set[str] = set()
    for page in pages:
        for line in page.lines:
            if line.size >= 1.12 * body:
                heading.add(_family(line.font))
            elif abs(line.size - body) < 0.5:
                chars[_family(line.font)] += len(line.text)
    return (chars.most_common(1)[0][0] if chars else ""), heading


def _hyphen_end(text: str) -> bool:
    return text[-1:] in LINE_END_HYPHEN or (text[-1:] == "-" and text[-2:-1].isalnum())


def _same_row(row: Sequence[str], other: Sequence[str]) -> bool:
    def strip(cells: Sequence[str]) -> list[str]:
        out = list(cells)
        while out and not out[-1]:
            out.pop()
        return out

    return strip(row) == strip(other)


def _row_goes_on(row: Sequence[str]) -> bool:
    """A row a page break cut: its first cell is empty or starts mid-sentence."""
    first = next((cell for cell in row if cell), "")
    return not row[0] or first[:1].islower()


def _wrapped(last: Line, line: Line, right: float) -> bool:
    """Whether ``last`` ended because the next word did not fit (rather than a new block)."""
    word = line.text.split(" ", 1)[0]
    room = right - last.x1
    return room < (len(word) + 1.5) * 0.5 * line.size


def _column_bases(lines: Sequence[Line]) -> dict[int, float]:
    """For each line, the left edge of the text column it sits in (to tell indented lists)."""
    xs = sorted(line.x0 for line in lines)
    bases: dict[int, float] = {}
    for line in lines:
        base = line.x0
        for x in xs:
            if line.x0 - 4 * line.size <= x <= line.x0:
                base = x
                break
        bases[id(line)] = base
    return bases


def _right_edges(lines: Sequence[Line], body: float) -> dict[int, float]:
    """For each line, the right edge of its column: the widest body line starting near it
    (a heading or title may span columns)."""
    text = sorted((o.x0, o.x1) for o in lines if o.size < 1.12 * body)
    starts = [x0 for x0, _ in text]
    edges: dict[int, float] = {}
    for line in lines:
        near = 3 * line.size
        lo, hi = bisect_left(starts, line.x0 - near), bisect_right(starts, line.x0 + near)
        edges[id(line)] = max((x1 for _, x1 in text[lo:hi]), default=line.x1)
    return edges


def _set_levels(blocks: list[Block], keys: list[tuple[float, bool, bool]]) -> list[Block]:
    """Heading levels by rank: larger first, then bold first; among headings alike in size and
    weight (italic or not), the style met first in the document ranks higher."""
    first_seen = {key: i for i, key in reversed(list(enumerate(keys)))}
    ranks = sorted(first_seen, key=lambda k: (-k[0], not k[1], first_seen[k]))
    out: list[Block] = []
    found = iter(keys)
    for block in blocks:
        if block.kind == "heading":
            level = min(ranks.index(next(found)) + 1, 6)
            block = Block("heading", block.text, page=block.page, level=level)
        out.append(block)
    return out
