"""Reading order of a scanned page: columns of prose are read one after the other.

An OCR engine reads a page line by line. Where two columns sit close together its lines can run
across the gutter (Tesseract, on a narrow gutter) or the lines of both columns can alternate down
the page. ``in_reading_order`` finds gutters, bands of whitespace that run down a stretch of the
page with lines of prose on both sides, cuts the engine's lines there and reads that stretch
column by column; everywhere else the engine's own order is kept. A table's column gap is such a
band too: it is told from a gutter by what lies beside it, since the lines of a prose column hold
several words and fill their column while a table's cells mostly hold a few words, so tables keep
being read row by row. Shared by the OCR adapters (each gives its words with the engine line they
came in). Measured on the corpus's scans in docs/benchmarks.md ("Columns read in order").
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

MIN_GUTTER = 1.2  # narrowest gutter, in word heights (a justified line's widest word space is less)
MAX_GUTTER = 5.0  # widest: 0.5 inch (Word's default) is about 4; a table's short cells leave more
MIN_ROWS = 3  # lines needed on each side of a gutter
MIN_WORDS = 3.5  # mean words per line on each side: prose columns, not a table's cells
MAX_LEAP = 4.0  # a gutter ends at a blank stretch this many word heights tall (above a footer)
CELL_FILL = 0.6  # a row filling less of each column's width than this may be a table's
MIN_BALANCE = 2 / 3  # columns of prose are about as wide as each other; a table's often are not


@dataclass(frozen=True)
class Word:
    """A word (or any run of text the engine boxed) on the page, y growing downwards."""

    text: str
    left: float
    top: float
    right: float
    bottom: float
    confidence: float
    line: Hashable  # the engine's line the word was read in


@dataclass(frozen=True)
class _Run:
    """A band of whitespace from ``left`` to ``right`` down the rows ``start`` to ``end``."""

    left: float
    right: float
    start: int
    end: int


def in_reading_order(words: Sequence[Word]) -> list[list[Word]]:
    """The engine's lines (its words grouped by ``line``, in the order given), cut at gutters
    and ordered column by column where the page has columns."""
    lines: dict[Hashable, list[Word]] = {}
    for word in words:
        lines.setdefault(word.line, []).append(word)
    pieces = list(lines.values())
    if not pieces:
        return []
    return _order(pieces, statistics.median(w.bottom - w.top for w in words))


def _order(pieces: list[list[Word]], unit: float) -> list[list[Word]]:
    rows = sorted(pieces, key=_middle)
    runs = _gutters(rows, unit)
    if not runs:
        return pieces
    run_of = {id(rows[i]): run for run in runs for i in range(run.start, run.end)}
    out: list[list[Word]] = []
    emitted: set[int] = set()
    for piece in pieces:
        run = run_of.get(id(piece))
        if run is None:
            out.append(piece)
        elif id(run) not in emitted:  # the whole stretch, column by column, where it begins
            emitted.add(id(run))
            left, right = _split(rows[run.start : run.end], run)
            out += _order(left, unit) + _order(right, unit)
    return out


def _gutters(rows: list[list[Word]], unit: float) -> list[_Run]:
    """The gutters among ``rows`` (pieces sorted top to bottom), longest first, none sharing a
    row: a sweep that narrows each band of whitespace row by row until it is too narrow."""
    min_gap = MIN_GUTTER * unit
    low = min(w.left for row in rows for w in row)
    high = max(w.right for row in rows for w in row)
    active: list[_Run] = []
    closed: list[_Run] = []
    floor = -float("inf")
    for i, row in enumerate(rows):
        if min(w.top for w in row) - floor > MAX_LEAP * unit:
            closed, active = closed + active, []
        floor = max(floor, max(w.bottom for w in row))
        free = _free(row, low, high, min_gap)
        going: list[_Run] = []
        for run in active:
            narrowed = [
                _Run(max(run.left, a), min(run.right, b), run.start, i + 1)
                for a, b in free
                if min(run.right, b) - max(run.left, a) >= min_gap
            ]
            if not narrowed:
                closed.append(run)
            going += narrowed
        going += [_Run(a, b, i, i + 1) for a, b in free]
        active = _undominated(going)
    parts = [part for run in closed + active for part in _around_tables(rows, run)]
    found = [_trim(rows, run) for run in parts if _columns(rows, run, unit)]
    chosen: list[_Run] = []
    for run in sorted(found, key=lambda r: r.start - r.end):
        if all(run.end <= c.start or run.start >= c.end for c in chosen):
            chosen.append(run)
    return chosen


def _around_tables(rows: list[list[Word]], run: _Run) -> list[_Run]:
    """The band less the stretches where it runs between a table's cells (a table spanning both
    columns whose column gap lines up with the gutter): three or more rows as seen on the page
    (lines side by side, whoever read them as one) whose text fills little of either column, two
    of them with text on both sides. Lines of prose fill their column but for the last of a
    paragraph."""
    low = min(w.left for row in rows[run.start : run.end] for w in row)
    high = max(w.right for row in rows[run.start : run.end] for w in row)
    seen: list[tuple[int, int, bool, bool]] = []  # a row on the page: start, end, short, both
    i = run.start
    while i < run.end:
        j, bottom = i + 1, max(w.bottom for w in rows[i])
        while j < run.end and min(w.top for w in rows[j]) < bottom:
            bottom = max(bottom, max(w.bottom for w in rows[j]))
            j += 1
        words = [w for row in rows[i:j] for w in row]
        left = _extent([w for w in words if w.right <= run.left]) / ((run.left - low) or 1.0)
        right = _extent([w for w in words if w.left >= run.right]) / ((high - run.right) or 1.0)
        seen.append((i, j, max(left, right) < CELL_FILL, left > 0 and right > 0))
        i = j
    parts, start, k = [], run.start, 0
    while k < len(seen):
        m = k
        while m < len(seen) and seen[m][2]:
            m += 1
        if m - k >= 3 and sum(both for *_, both in seen[k:m]) >= 2:
            parts.append(_Run(run.left, run.right, start, seen[k][0]))
            start = seen[m - 1][1]
        k = max(m, k + 1)
    parts.append(_Run(run.left, run.right, start, run.end))
    return [part for part in parts if part.end > part.start]


def _extent(words: list[Word]) -> float:
    return max(w.right for w in words) - min(w.left for w in words) if words else 0.0


def _free(row: list[Word], low: float, high: float, min_gap: float) -> list[tuple[float, float]]:
    """The stretches of [low, high] that no word of the row covers, at least ``min_gap`` wide."""
    free: list[tuple[float, float]] = []
    at = low
    for word in sorted(row, key=lambda w: w.left):
        if word.left - at >= min_gap:
            free.append((at, word.left))
        at = max(at, word.right)
    if high - at >= min_gap:
        free.append((at, high))
    return free


def _undominated(runs: list[_Run]) -> list[_Run]:
    """Drop a band that another, as wide or wider and begun as early or earlier, contains."""
    kept: list[_Run] = []
    for run in sorted(runs, key=lambda r: (r.start, r.left - r.right)):
        if not any(k.left <= run.left and run.right <= k.right for k in kept):
            kept.append(run)
    return kept


def _trim(rows: list[list[Word]], run: _Run) -> _Run:
    """Give rows on one side only at either end of the band to what lies beyond it, when they
    sit closer to that than to their own column: a table's first rows under a pair of columns,
    a paragraph's short last line above them."""
    start, end = run.start, run.end
    while end - start > 1 and (loose := _loose(rows[start:end][::-1], rows[end:], run)):
        end -= loose
    while end - start > 1 and (loose := _loose(rows[start:end], rows[:start][::-1], run)):
        start += loose
    return _Run(run.left, run.right, start, end)


def _loose(inside: list[list[Word]], outside: list[list[Word]], run: _Run) -> int:
    """How many rows at one end of the band (``inside`` and ``outside`` both listed from that
    end) belong beyond it: the rows on one side only, up to the widest blank between them and
    their column, when the nearest row beyond is nearer than that blank."""
    side = _side(inside[0], run)
    tail = list(itertools.takewhile(lambda r: _side(r, run) == side, inside))
    own = next((r for r in inside[len(tail) :] if _side(r, run) != -side), None)
    nearest = next((r for r in outside if _side(r, run) != -side), None)
    if side == 0 or own is None or nearest is None:
        return 0
    gaps = [_distance(a, b) for a, b in itertools.pairwise([*tail, own])]
    widest = max(range(len(gaps)), key=gaps.__getitem__)
    return widest + 1 if _distance(tail[0], nearest) < gaps[widest] else 0


def _side(row: list[Word], run: _Run) -> int:
    """-1: all the row's words lie left of the band, 1: all right of it, 0: otherwise."""
    sides = {-1 if w.right <= run.left else 1 if w.left >= run.right else 0 for w in row}
    return sides.pop() if len(sides) == 1 else 0


def _distance(a: list[Word], b: list[Word]) -> float:
    """The blank height between two rows (negative where they overlap)."""
    return max(
        min(w.top for w in b) - max(w.bottom for w in a),
        min(w.top for w in a) - max(w.bottom for w in b),
    )


def _columns(rows: list[list[Word]], run: _Run, unit: float) -> bool:
    """Whether the band separates two columns of prose (not a margin, a list's bullets or a
    table's column gap): a gutter no wider than a column layout leaves, columns of about the same
    width, lines of several words on both sides."""
    left, right = _split(rows[run.start : run.end], run)
    if not left or not right or run.right - run.left > MAX_GUTTER * unit:
        return False
    widths = (
        run.left - min(w.left for p in left for w in p),
        _extent([w for p in right for w in p]),
    )
    return min(widths) >= MIN_BALANCE * max(widths) and all(
        len(side) >= MIN_ROWS
        and statistics.fmean(sum(len(w.text.split()) for w in part) for part in side) >= MIN_WORDS
        for side in (left, right)
    )


def _split(rows: list[list[Word]], run: _Run) -> tuple[list[list[Word]], list[list[Word]]]:
    """Each row's words left and right of the band (no word of these rows crosses it)."""
    left = [part for row in rows if (part := [w for w in row if w.right <= run.left])]
    right = [part for row in rows if (part := [w for w in row if w.left >= run.right])]
    return left, right


def _middle(piece: list[Word]) -> float:
    return (min(w.top for w in piece) + max(w.bottom for w in piece)) / 2
