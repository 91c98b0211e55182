"""Text lines of a PDF page from pdfium's text layer, with the geometry and font the layout needs.

pdfium's text order keeps column order (left column, then right column), so lines are taken in that
order. Per-character geometry costs a C call per character, so only a handful of characters per
line are measured here; ``segments`` measures every character of the lines it is given, which the
table finder asks for on the few pages that look tabular.
"""

from __future__ import annotations

import ctypes
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import pypdfium2.raw as pdfium_c

# pdfium stands in U+FFFE (older builds: U+0002) for a hyphen at the end of a line.
LINE_END_HYPHEN = "\ufffe\x02"
_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demi", re.IGNORECASE)
_SUBSET_PREFIX = re.compile(r"^[A-Z]{6}\+")
_MONO = re.compile(r"mono|courier|consol|code", re.IGNORECASE)
_SURROGATE = re.compile("[\ud800-\udfff]")
_MARKER = re.compile("[" + LINE_END_HYPHEN + "]")


@dataclass
class Line:
    """One text line of a page, in pdfium's reading order."""

    text: str  # without leading/trailing spaces; may hold LINE_END_HYPHEN markers
    start: int  # pdfium char index of the first character of ``text``
    end: int  # pdfium char index after the last character of ``text``
    x0: float
    x1: float
    y: float  # baseline, measured from the top of the page
    size: float
    bold: bool
    font: str  # base font name without subset prefix
    page: int  # 1-based
    mono: bool = False  # set in a fixed-width font from end to end (code)
    segments: list[Segment] = field(default_factory=list)


@dataclass
class Segment:
    """A run of a line's characters with no wide horizontal gap inside (one table cell line)."""

    text: str
    x0: float
    x1: float
    y: float
    start: int  # pdfium char index, for reading-order comparisons
    line: Line


class PageText:
    """The characters of one page and cheap per-character look-ups."""

    def __init__(self, textpage: Any, height: float) -> None:
        self.raw = textpage.raw
        self.height = height
        self.count = int(pdfium_c.FPDFText_CountChars(self.raw))
        self.chars = _page_chars(self.raw, self.count)
        self._l, self._r = ctypes.c_double(), ctypes.c_double()
        self._b, self._t = ctypes.c_double(), ctypes.c_double()
        self._font = ctypes.create_string_buffer(128)

    def box(self, i: int) -> tuple[float, float, float, float]:
        """(left, right, bottom, top) of char ``i`` in PDF units (y up)."""
        pdfium_c.FPDFText_GetCharBox(self.raw, i, self._l, self._r, self._b, self._t)
        return self._l.value, self._r.value, self._b.value, self._t.value

    def baseline(self, i: int) -> float:
        pdfium_c.FPDFText_GetCharOrigin(self.raw, i, self._l, self._b)
        return self.height - self._b.value

    def size(self, i: int) -> float:
        return float(pdfium_c.FPDFText_GetFontSize(self.raw, i))

    def font(self, i: int) -> tuple[str, bool]:
        """Base font name and whether it is bold."""
        pdfium_c.FPDFText_GetFontInfo(self.raw, i, self._font, 128, None)
        name = _SUBSET_PREFIX.sub("", self._font.value.decode("latin-1"))
        weight = int(pdfium_c.FPDFText_GetFontWeight(self.raw, i))
        return name, weight >= 600 or bool(_BOLD_NAME.search(name))


def _page_chars(raw: Any, count: int) -> str:
    """The page's characters as one string indexed like pdfium's char array.

    Characters outside the BMP take two pdfium indices (UTF-16 surrogates); they are kept as two
    code units here so indices line up, and ``fix_surrogates`` joins them in finished text.
    """
    if count <= 0:
        return ""
    buffer = (ctypes.c_ushort * (count + 1))()
    written = int(pdfium_c.FPDFText_GetText(raw, 0, count, buffer)) - 1
    if written == count:
        return "".join(map(chr, buffer[:count]))
    # pdfium left some characters out of the text: read them one by one instead.
    return "".join(chr(pdfium_c.FPDFText_GetUnicode(raw, i)) for i in range(count))


def fix_surrogates(text: str) -> str:
    """Join UTF-16 surrogate pairs kept from pdfium's char array into real characters."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def page_lines(pt: PageText, page: int) -> list[Line]:
    """The page's lines, split where pdfium put a line break."""
    lines: list[Line] = []
    chars = pt.chars
    pos = 0
    for raw_line in re.split(r"\r\n|\r|\n", chars):
        stripped = raw_line.strip()
        if stripped and not _is_noise(stripped):
            start = pos + len(raw_line) - len(raw_line.lstrip())
            for a, b in _hyphen_breaks(pt, start, start + len(stripped)):
                lines.append(_measure(pt, chars[a:b], a, b, page))
        pos += len(raw_line) + _newline_len(chars, pos + len(raw_line))
    return lines


def _hyphen_breaks(pt: PageText, start: int, end: int) -> list[tuple[int, int]]:
    """pdfium joins a line ending in a hyphen to the next one; cut them apart again."""
    pieces: list[tuple[int, int]] = []
    for found in _MARKER.finditer(pt.chars, start, end - 1):
        i = found.start()
        if abs(pt.baseline(i + 1) - pt.baseline(i)) > 2:
            pieces.append((start, i + 1))
            start = i + 1
    pieces.append((start, end))
    return pieces


def _newline_len(chars: str, at: int) -> int:
    if chars.startswith("\r\n", at):
        return 2
    return 1 if at < len(chars) else 0


def _is_noise(text: str) -> bool:
    # Only control characters or lone surrogate halves: nothing a reader can see.
    return all(c < " " or c in "\ufffe\ufeff" for c in text)


def _measure(pt: PageText, text: str, start: int, end: int, page: int) -> Line:
    last = end - 1
    left = pt.box(start)[0]
    right = pt.box(last)[1]
    font, bold = pt.font(start)
    mono = bool(_MONO.search(font))
    if (bold or mono) and last != start:
        # A bold lead-in word or a code span at the start does not make the whole line so.
        last_font, last_bold = pt.font(last)
        bold, mono = bold and last_bold, mono and bool(_MONO.search(last_font))
    return Line(
        text=text,
        start=start,
        end=end,
        x0=left,
        x1=max(right, left),
        y=pt.baseline(start),
        size=max(pt.size(start), pt.size(last)),  # a code span at either end is often smaller
        bold=bold,
        font=font,
        page=page,
        mono=mono,
    )


def split_segments(pt: PageText, line: Line, gap_em: float) -> list[Segment]:
    """Cut a line at gaps wider than ``gap_em`` em.

    Justified text stretches every word space of a line alike, often past ``gap_em``: a line whose
    word spaces are all about as wide is not cut.
    """
    chars: list[tuple[int, float, float]] = []
    for i in range(line.start, line.end):
        if not pt.chars[i].isspace():
            left, right, _, _ = pt.box(i)
            chars.append((i, left, right))
    if not chars:
        return []
    gaps = [b[1] - a[2] for a, b in itertools.pairwise(chars)]
    spaces = sorted(g for g in gaps if g > 0.15 * line.size)
    justified = len(spaces) > 1 and spaces[-1] < min(1.6 * spaces[0], 1.5 * line.size)
    limit = max(gap_em * line.size, 2 * spaces[-1] if justified else 0.0)
    segments: list[Segment] = []
    first = 0
    for k, gap in enumerate(gaps, start=1):
        if gap > limit:
            segments.append(_segment(pt, line, chars[first:k]))
            first = k
    segments.append(_segment(pt, line, chars[first:]))
    return segments


def _segment(pt: PageText, line: Line, chars: list[tuple[int, float, float]]) -> Segment:
    start, end = chars[0][0], chars[-1][0] + 1
    x1 = max(right for _, _, right in chars)
    return Segment(pt.chars[start:end].strip(), chars[0][1], x1, pt.baseline(start), start, line)
