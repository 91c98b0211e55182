"""Tables on PDF pages: ruled ones through pdfplumber, unruled ones from text alignment.

pdfium reads a table cell by cell and merges cells that share a baseline into one line, so table
text has to be rebuilt from positions. Both finders cost far more than reading text, so they run
only on pages whose lines or drawings look tabular (``looks_tabular``).
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pypdfium2.raw as pdfium_c

from datatorag_processor.extract.blocks import LIST_MARKER
from datatorag_processor.extract.pdf_lines import Line, PageText, Segment, split_segments

CELL_GAP_EM = 0.6  # wider than any word space of left-aligned text, narrower than cell padding
_MAX_CHEAP_OBJECTS = 400  # scanning page objects costs a C call each; only cheap pages always


@dataclass
class Table:
    page: int
    top: float
    bottom: float
    rows: list[list[str]]
    lines: set[int] = field(default_factory=set)  # id() of the page lines it replaces


@dataclass
class Rules:
    horizontal: list[tuple[float, float, float]]  # (y from top, x0, x1)
    vertical: list[tuple[float, float, float]]  # (x, top, bottom)

    @property
    def grid(self) -> bool:
        return len(self.vertical) >= 4 and len(self.horizontal) >= 3


def page_rules(page: Any, height: float, *, force: bool) -> Rules | None:
    """Thin horizontal/vertical paths on the page; None when too many objects to scan cheaply."""
    count = int(pdfium_c.FPDFPage_CountObjects(page.raw))
    if count > _MAX_CHEAP_OBJECTS and not force:
        return None
    left, bottom = ctypes.c_float(), ctypes.c_float()
    right, top = ctypes.c_float(), ctypes.c_float()
    rules = Rules([], [])
    for i in range(count):
        obj = pdfium_c.FPDFPage_GetObject(page.raw, i)
        if pdfium_c.FPDFPageObj_GetType(obj) != pdfium_c.FPDF_PAGEOBJ_PATH:
            continue
        pdfium_c.FPDFPageObj_GetBounds(obj, left, bottom, right, top)
        width, tall = right.value - left.value, top.value - bottom.value
        if tall < 2.5 and width > 30:
            rules.horizontal.append((height - top.value, left.value, right.value))
        elif width < 2.5 and tall > 8:
            rules.vertical.append((left.value, height - top.value, height - bottom.value))
    return rules


def looks_tabular(lines: Sequence[Line], rules: Rules | None) -> bool:
    """Cheap signs of a table: wide gaps inside a line, cell-by-cell jumps, ruling lines."""
    if rules is not None and (rules.horizontal or rules.vertical):
        return True
    jumps_up = 0
    for prev, line in zip(lines, lines[1:], strict=False):
        if _gappy(line):
            return True
        if line.y < prev.y - 0.5 * line.size:
            jumps_up += 1
        elif line.y - prev.y < 2 * line.size and line.x0 - prev.x0 > 4 * line.size:
            return True  # the next line of a cell in a later column
    return jumps_up >= 2


def _gappy(line: Line) -> bool:
    words = line.text.split()
    if len(words) < 2 or line.size <= 0:
        return False
    return (line.x1 - line.x0) / (len(line.text) * line.size) > 0.65


def ruled_tables(plumber_page: Any, page_no: int, lines: Sequence[Line], vocab: set[str]) -> list[Table]:
    """Tables drawn with cell borders, as pdfplumber's lattice finder sees them."""
    tables = []
    for found in plumber_page.find_tables():
        x0, top, x1, bottom = found.bbox
        rows = [
            [join_cell_lines((cell or "").split("\n"), vocab) for cell in row]
            for row in found.extract()
        ]
        rows = [row for row in rows if any(row)]
        if len(rows) < 1 or max(len(r) for r in rows) < 2:
            continue
        table = Table(page_no, top, bottom, rows)
        for line in lines:
            mid = (line.x0 + line.x1) / 2
            if top - 2 <= line.y <= bottom + 2 and x0 - 2 <= mid <= x1 + 2:
                table.lines.add(id(line))
        tables.append(table)
    return tables


def join_cell_lines(
    parts: Sequence[str], vocab: set[str], fills: Callable[[int], bool] | None = None
) -> str:
    """Join the lines of one cell, rejoining words a narrow column broke ("compensatio", "n")."""
    text, prev = "", ""
    for i, part in enumerate(p.strip() for p in parts):
        if not part:
            continue
        if text and _broken_word(prev, part, vocab, fills(i - 1) if fills else False):
            text += part
        elif text:
            text += ("" if text.endswith("-") and text[-2:-1].isalnum() else " ") + part
        else:
            text = part
        prev = part
    return text


def _broken_word(prev: str, part: str, vocab: set[str], fills: bool) -> bool:
    """Only a word too long for its column is broken, so it fills a line of its own."""
    if " " in prev or not (prev[-1:].isalpha() and part[:1].isalpha() and part[:1].islower()):
        return False
    head = re.sub(r"\W+$", "", part.split(" ", 1)[0].lower())
    if fills and head not in vocab:
        return True  # "compensatio" + "n": the rest is no word of its own
    return (prev + head).lower() in vocab and prev.lower() not in vocab


# -- unruled tables -------------------------------------------------------------------------


@dataclass
class _Row:
    y: float
    size: float
    segments: list[Segment]


def aligned_tables(pt: PageText, lines: Sequence[Line], page_no: int, body_size: float, vocab: set[str]) -> list[Table]:
    """Tables without borders: rows of segments whose left edges line up in columns."""
    segments = [seg for line in lines for seg in _cell_segments(pt, line)]
    rows = _visual_rows(segments)
    tables: list[Table] = []
    i = 0
    while i < len(rows):
        found = _grow_table(rows, i, body_size)
        if found is None:
            i += 1
            continue
        end, anchors = found
        region = rows[i:end]
        table = _build_table(region, anchors, page_no, vocab)
        if table is not None:
            tables.append(table)
            i = end
        else:
            i += 1
    return tables


def _cell_segments(pt: PageText, line: Line) -> list[Segment]:
    segments = split_segments(pt, line, CELL_GAP_EM)
    # A list bullet stands apart from its text: keep it with the text it belongs to.
    merged: list[Segment] = []
    for seg in segments:
        if merged and LIST_MARKER.match(merged[-1].text + " ") and len(merged[-1].text) <= 4:
            prev = merged.pop()
            seg = Segment(prev.text + " " + seg.text, prev.x0, seg.x1, prev.y, prev.start, line)
        merged.append(seg)
    line.segments = merged
    return merged


def _visual_rows(segments: list[Segment]) -> list[_Row]:
    rows: list[_Row] = []
    for seg in sorted(segments, key=lambda s: (s.y, s.x0)):
        if rows and abs(seg.y - rows[-1].y) <= 0.3 * seg.line.size:
            rows[-1].segments.append(seg)
        else:
            rows.append(_Row(seg.y, seg.line.size, [seg]))
    for row in rows:
        row.segments.sort(key=lambda s: s.x0)
    return rows


def _grow_table(rows: list[_Row], first: int, body_size: float) -> tuple[int, list[float]] | None:
    """Rows from ``first`` on that keep to one set of column edges; None if no table starts there.

    A row of several segments whose left edges all meet known column edges confirms the columns;
    wide word spaces of justified text start segments at random places and confirm nothing.
    """
    start = rows[first]
    if len(start.segments) < 2 or _is_heading(start, body_size):
        return None
    anchors = [seg.x0 for seg in start.segments]
    left = anchors[0]
    confirmed = 0
    gaps: list[float] = []
    end = first + 1
    while end < len(rows):
        row, prev = rows[end], rows[end - 1]
        gap = row.y - prev.y
        if gap > 2.6 * row.size or (gaps and gap > 1.6 * min(gaps) and gap > 1.5 * max(gaps)):
            break
        if _is_heading(row, body_size) or not _fits(row, anchors, left):
            break
        tol = 0.4 * row.size
        new = [s.x0 for s in row.segments if all(abs(s.x0 - a) > tol for a in anchors)]
        confirmed += len(row.segments) >= 2 and not new
        anchors = sorted(anchors + new)
        gaps.append(gap)
        end += 1
    if confirmed < 1:
        return None
    return end, anchors


def _is_heading(row: _Row, body_size: float) -> bool:
    return row.size > 1.1 * body_size


def _fits(row: _Row, anchors: list[float], left: float) -> bool:
    """Every segment starts at or right of the table's left edge and crosses no column edge."""
    tol = 0.4 * row.size
    for seg in row.segments:
        if seg.x0 < left - tol:
            return False
        if any(seg.x0 + tol < a < seg.x1 - tol for a in anchors):
            return False
    return True


def _column(x0: float, anchors: list[float], tol: float) -> int:
    col = 0
    for i, a in enumerate(anchors):
        if x0 >= a - tol:
            col = i
    return col


def _build_table(region: list[_Row], anchors: list[float], page_no: int, vocab: set[str]) -> Table | None:
    if not _reads_row_by_row(region):
        return None  # two text columns read one after the other, not a table
    tol = 0.4 * region[0].size
    groups = _table_rows(region)
    widths = _column_right_edges(region, anchors, tol)
    rows: list[list[str]] = []
    for group in groups:
        cells: list[list[Segment]] = [[] for _ in anchors]
        for row in group:
            for seg in row.segments:
                cells[_column(seg.x0, anchors, tol)].append(seg)
        rows.append([_cell_text(cell, widths, anchors, tol, vocab) for cell in cells])
    used = [i for i in range(len(anchors)) if any(row[i] for row in rows)]
    rows = [[row[i] for i in used] for row in rows]
    table = Table(page_no, region[0].y - region[0].size, region[-1].y, rows)
    table.lines = {id(seg.line) for row in region for seg in row.segments}
    return table


def _reads_row_by_row(region: list[_Row]) -> bool:
    """pdfium reads a table row by row, but two text columns one whole column after the other."""
    multi = [row for row in region if len(row.segments) >= 2]
    return multi[0].segments[-1].start < multi[-1].segments[0].start


def _table_rows(region: list[_Row]) -> list[list[_Row]]:
    """Group visual lines into table rows: rows are set apart by their cell padding."""
    gaps = [b.y - a.y for a, b in zip(region, region[1:], strict=False)]
    if not gaps or max(gaps) < 1.12 * min(gaps):
        return [[row] for row in region]
    limit = 1.12 * min(gaps)
    groups = [[region[0]]]
    for gap, row in zip(gaps, region[1:], strict=False):
        if gap > limit:
            groups.append([row])
        else:
            groups[-1].append(row)
    return groups


def _column_right_edges(region: list[_Row], anchors: list[float], tol: float) -> list[float]:
    edges = [0.0] * len(anchors)
    for row in region:
        for seg in row.segments:
            col = _column(seg.x0, anchors, tol)
            edges[col] = max(edges[col], seg.x1)
    return edges


def _cell_text(cell: list[Segment], edges: list[float], anchors: list[float], tol: float, vocab: set[str]) -> str:
    if not cell:
        return ""
    col = _column(cell[0].x0, anchors, tol)

    def fills(i: int) -> bool:
        return cell[i].x1 >= edges[col] - 1.2 * tol

    return join_cell_lines([seg.text for seg in cell], vocab, fills)
