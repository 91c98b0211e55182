"""Tables on PDF pages: ruled ones from pdfium's cell borders, unruled ones from text alignment.

pdfium reads a table cell by cell and merges cells that share a baseline into one line, so table
text has to be rebuilt from positions. Both finders cost far more than reading text, so they run
only on pages whose lines or drawings look tabular (``looks_tabular``).
"""

from __future__ import annotations

import ctypes
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pypdfium2.raw as pdfium_c

from datatorag_processor.extract.blocks import LIST_MARKER
from datatorag_processor.extract.pdf_lines import (
    LINE_END_HYPHEN,
    Line,
    PageText,
    Segment,
    split_segments,
)

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
        if tall < 2.5 and width > 2 * tall:
            rules.horizontal.append((height - top.value, left.value, right.value))
        elif width < 2.5 and tall > 2 * width:
            rules.vertical.append((left.value, height - top.value, height - bottom.value))
    return rules


def looks_tabular(lines: Sequence[Line], rules: Rules | None, height: float) -> bool:
    """Cheap signs of a table: wide gaps inside a line, cell-by-cell jumps, ruling lines.

    Lines in the top and bottom margins (running headers, "Page 1 of 6") are left out.
    """
    if rules is not None and (rules.horizontal or rules.vertical):
        return True
    lines = [ln for ln in lines if 0.07 * height < ln.y < 0.93 * height]
    jumps_up = 0
    for prev, line in itertools.pairwise(lines):
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


def ruled_tables(
    pt: PageText, lines: Sequence[Line], rules: Rules, page_no: int, vocab: set[str]
) -> list[Table]:
    """Tables drawn with cell borders: each character goes to the grid cell it lies in."""
    tables = []
    for region in _rule_regions(rules):
        table = _lattice(pt, lines, region, page_no, vocab)
        if table is not None:
            tables.append(table)
    return tables


@dataclass
class _Region:
    top: float
    bottom: float
    x0: float
    x1: float
    vertical: list[tuple[float, float, float]]
    rows: list[float] = field(default_factory=list)  # y of the horizontal rules, top down
    columns: list[float] = field(default_factory=list)  # x of the vertical rules, left to right
    # per row band, the column rules that cross it (a cell spanning columns has none inside)
    present: list[list[int]] = field(default_factory=list)


def _rule_regions(rules: Rules) -> list[_Region]:
    """Groups of vertical rules that touch, with the horizontal rules across them."""
    regions: list[_Region] = []
    for x, top, bottom in sorted(rules.vertical, key=lambda v: v[1]):
        last = regions[-1] if regions else None
        if last is not None and top <= last.bottom + 3:
            last.bottom = max(last.bottom, bottom)
            last.x0, last.x1 = min(last.x0, x), max(last.x1, x)
            last.vertical.append((x, top, bottom))
        else:
            regions.append(_Region(top, bottom, x, x, [(x, top, bottom)]))
    found = []
    for region in regions:
        region.columns = _cluster(v[0] for v in region.vertical)
        region.rows = _cluster(
            y
            for y, x0, x1 in rules.horizontal
            if region.top - 3 <= y <= region.bottom + 3
            and _on_border(x0, region.columns)
            and _on_border(x1, region.columns)  # not a link underline inside a cell
        )
        if len(region.columns) >= 2 and len(region.rows) >= 2:
            region.present = [
                [i for i, x in enumerate(region.columns) if _border_at(region, x, (a + b) / 2)]
                for a, b in zip(region.rows, region.rows[1:], strict=False)
            ]
            found.append(region)
    return found


def _on_border(x: float, columns: list[float]) -> bool:
    return any(abs(x - c) <= 3 for c in columns)


def _cluster(values: Iterable[float], tol: float = 2.0) -> list[float]:
    out: list[float] = []
    for v in sorted(values):
        if not out or v - out[-1] > tol:
            out.append(v)
    return out


def _lattice(
    pt: PageText, lines: Sequence[Line], region: _Region, page_no: int, vocab: set[str]
) -> Table | None:
    inside = [
        ln
        for ln in lines
        if region.rows[0] - 1 <= ln.y <= region.rows[-1] + 1
        and ln.x0 >= region.x0 - 1
        and ln.x1 <= region.x1 + 1
    ]
    if not inside:
        return None
    cells: dict[tuple[int, int], dict[int, list[str]]] = {}
    for line in inside:
        where: tuple[int, int] | None = None
        for i in range(line.start, line.end):
            char = pt.chars[i]
            if not char.isspace() or where is None:
                left, right, bottom, top = pt.box(i)
                where = _cell_at(region, (left + right) / 2, pt.height - (bottom + top) / 2)
            if where is not None:
                cells.setdefault(where, {}).setdefault(id(line), []).append(char)
    if not cells:
        return None
    n_rows = len(region.rows) - 1
    n_cols = len(region.columns) - 1
    rows = [
        [
            join_cell_lines(["".join(p) for p in cells.get((r, c), {}).values()], vocab)
            for c in range(n_cols)
        ]
        for r in range(n_rows)
    ]
    used = [c for c in range(n_cols) if any(row[c] for row in rows)]
    rows = [[row[c] for c in used] for row in rows if any(row)]
    if not rows or len(used) < 2:
        return None
    table = Table(page_no, region.rows[0], region.rows[-1], rows)
    table.lines = {id(line) for line in inside}
    return table


def _cell_at(region: _Region, x: float, y: float) -> tuple[int, int] | None:
    row = next((k for k in range(len(region.rows) - 1) if y < region.rows[k + 1]), None)
    if row is None or y < region.rows[0]:
        return None
    col = None
    for i in region.present[row]:
        if region.columns[i] <= x + 1:
            col = i
    if col is None or col >= len(region.columns) - 1 or x > region.columns[-1] + 1:
        return None
    return row, col


def _border_at(region: _Region, x: float, y: float) -> bool:
    return any(
        abs(vx - x) <= 2 and top - 1 <= y <= bottom + 1 for vx, top, bottom in region.vertical
    )


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
            text += ("" if _hyphen_end(text) else " ") + part
        else:
            text = part
        prev = part
    return text


def _hyphen_end(text: str) -> bool:
    return text[-1:] in LINE_END_HYPHEN or (text[-1:] == "-" and text[-2:-1].isalnum())


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


def aligned_tables(
    pt: PageText, lines: Sequence[Line], page_no: int, body_size: float, vocab: set[str]
) -> list[Table]:
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
        if gap > 2.6 * row.size or (gaps and gap > max(gaps) + 0.5 * row.size):
            break  # the space after a table is wider than the padding between its rows
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


def _build_table(
    region: list[_Row], anchors: list[float], page_no: int, vocab: set[str]
) -> Table | None:
    tol = 0.4 * region[0].size
    if not _reads_row_by_row(region, anchors, tol):
        return None  # two text columns read one after the other, not a table
    groups = _table_rows(region)
    widths = _column_right_edges(region, anchors, tol)
    rows: list[list[str]] = []
    for group in groups:
        cells: list[list[Segment]] = [[] for _ in anchors]
        for row in group:
            for seg in row.segments:
                cells[_column(seg.x0, anchors, tol)].append(seg)
        rows.append([_cell_text(cell, widths, anchors, tol, vocab) for cell in cells])
    rows = _merge_columns(rows)
    table = Table(page_no, region[0].y - region[0].size, region[-1].y, rows)
    table.lines = {id(seg.line) for row in region for seg in row.segments}
    return table


def _merge_columns(rows: list[list[str]]) -> list[list[str]]:
    """Drop empty columns; join a column to its left neighbour when no row fills both (a header
    set left of centred or right-aligned numbers makes two edges for one column)."""
    width = len(rows[0])
    keep = [c for c in range(width) if any(row[c] for row in rows)]
    merged: list[list[int]] = []
    for c in keep:
        if merged and not any(row[c] and any(row[p] for p in merged[-1]) for row in rows):
            merged[-1].append(c)
        else:
            merged.append([c])
    return [[" ".join(row[c] for c in group if row[c]) for group in merged] for row in rows]


def _reads_row_by_row(region: list[_Row], anchors: list[float], tol: float) -> bool:
    """pdfium reads a table row by row, coming back to the first column for each row; it reads
    two text columns one after the other, never coming back to the left one."""
    ordered = sorted((seg for row in region for seg in row.segments), key=lambda s: s.start)
    columns = [_column(seg.x0, anchors, tol) for seg in ordered]
    rows_per_column = Counter(
        col for row in region for col in {_column(s.x0, anchors, tol) for s in row.segments}
    )
    first = min(col for col, n in rows_per_column.items() if n >= 2)
    return any(a > first >= b for a, b in itertools.pairwise(columns))


def _table_rows(region: list[_Row]) -> list[list[_Row]]:
    """Group visual lines into table rows: rows are set apart by their cell padding."""
    gaps = [b.y - a.y for a, b in itertools.pairwise(region)]
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


def _cell_text(
    cell: list[Segment], edges: list[float], anchors: list[float], tol: float, vocab: set[str]
) -> str:
    if not cell:
        return ""
    col = _column(cell[0].x0, anchors, tol)

    def fills(i: int) -> bool:
        return cell[i].x1 >= edges[col] - 1.2 * tol

    return join_cell_lines([seg.text for seg in cell], vocab, fills)
