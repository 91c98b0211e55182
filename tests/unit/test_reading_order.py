"""Column order of OCR'd pages (``domain.reading_order``), as both OCR adapters use it.

Pages are laid out here in pixels of a 300 dpi letter page (2550 wide), with words 40 high on a
60-pixel line pitch, the sizes Tesseract reports for 11-point text.
"""

from __future__ import annotations

from typing import Any

import pytest

from datatorag.adapters.ocr.textract import _lines
from datatorag.domain.reading_order import Word, in_reading_order

pytestmark = pytest.mark.unit

CHAR = 22  # pixels per character of 11-point text at 300 dpi, space included


def _words(text: str, x: int, y: int, line: object) -> list[Word]:
    """The words of ``text`` set from ``x`` on the line at ``y``, as one engine line."""
    out = []
    for token in text.split():
        out.append(Word(token, x, y, x + CHAR * len(token), y + 40, 95.0, line))
        x += CHAR * (len(token) + 1)
    return out


def _texts(lines: list[list[Word]]) -> list[str]:
    return [" ".join(w.text for w in line) for line in lines]


LEFT = [f"left column line {i} of running prose text" for i in range(8)]
RIGHT = [f"right column line {i} of running prose text" for i in range(8)]


def test_lines_run_across_a_narrow_gutter_are_cut_and_read_column_by_column() -> None:
    """Tesseract's failure on a narrow gutter: each of its lines holds both columns' words. The
    right column is shorter: the left one's last lines still belong to it, not to the footer."""
    words = _words("A title across both columns", 200, 250, "title")
    for i, left in enumerate(LEFT):
        right = _words(RIGHT[i], 1250, 400 + 60 * i, i) if i < 5 else []
        words += _words(left, 200, 400 + 60 * i, i) + right
    words += _words("A footer line that runs across the whole width of the page", 200, 950, "f")
    lines = _texts(in_reading_order(words))
    assert lines == [
        "A title across both columns",
        *LEFT,
        *RIGHT[:5],
        "A footer line that runs across the whole width of the page",
    ]


def test_columns_listed_row_by_row_are_read_one_after_the_other() -> None:
    """Separate lines per column, but the two columns' lines alternate (Textract's order)."""
    words = [
        w
        for i, (left, right) in enumerate(zip(LEFT, RIGHT, strict=True))
        for w in _words(left, 200, 400 + 60 * i, ("l", i))
        + _words(right, 1250, 400 + 60 * i, ("r", i))
    ]
    assert _texts(in_reading_order(words)) == [*LEFT, *RIGHT]


def test_a_table_keeps_its_rows_and_a_single_column_its_order() -> None:
    cells = [
        ("Leave type", "Days"),
        ("Annual", "26"),
        ("Sick", "13 a year"),
        ("Jury duty", "as needed"),
    ]
    table = [
        w
        for i, (a, b) in enumerate(cells)
        for w in _words(a, 200, 400 + 60 * i, i) + _words(b, 1250, 400 + 60 * i, i)
    ]
    assert _texts(in_reading_order(table)) == [f"{a} {b}" for a, b in cells]
    bullets = [f"• item {i} of a list with a hanging indent and prose" for i in range(6)]
    listed = [w for i, text in enumerate(bullets) for w in _words(text, 200, 400 + 60 * i, i)]
    assert _texts(in_reading_order(listed)) == bullets
    prose = [w for i, text in enumerate(LEFT) for w in _words(text * 2, 200, 400 + 60 * i, i)]
    assert _texts(in_reading_order(prose)) == [text * 2 for text in LEFT]


def test_a_column_ending_under_a_table_row_leaves_the_row_to_the_table() -> None:
    """A table spanning both columns starts right under them: its first row, on the left of the
    gutter only, belongs with the table below it, not with the left column."""
    words = [
        w
        for i, (left, right) in enumerate(zip(LEFT[:4], RIGHT[:4], strict=True))
        for w in _words(left, 200, 400 + 60 * i, i) + _words(right, 1250, 400 + 60 * i, i)
    ]
    words += _words("Site Description", 200, 720, "header")  # 80 below the columns, 20 above
    words += _words("Online University where plans are kept", 200, 780, "row")
    wide = "Overview   Provides information on common goals and why they are important"
    words += _words(wide, 200, 840, "wide row")  # runs across the gutter
    lines = _texts(in_reading_order(words))
    assert lines == [
        *LEFT[:4],
        *RIGHT[:4],
        "Site Description",
        "Online University where plans are kept",
        " ".join(wide.split()),
    ]


def test_a_table_whose_column_gap_lines_up_with_the_gutter_keeps_its_rows() -> None:
    """A table spanning both columns, its second column starting where the right column does:
    the gutter runs down through it, but its rows fill little of either column."""
    words: list[Word] = []
    for i in range(4):  # two columns above the table, then four rows, then two columns again
        words += _words(LEFT[i], 200, 400 + 60 * i, i) + _words(RIGHT[i], 1250, 400 + 60 * i, i)
    cells = [("Day", "Hours"), ("Monday", "10"), ("Tuesday", "9"), ("Friday", "8")]
    for i, (a, b) in enumerate(cells):
        words += _words(a, 200, 700 + 60 * i, f"t{i}") + _words(b, 1250, 700 + 60 * i, f"t{i}")
    for i in range(4, 8):
        words += _words(LEFT[i], 200, 760 + 60 * i, i) + _words(RIGHT[i], 1250, 760 + 60 * i, i)
    assert _texts(in_reading_order(words)) == [
        *LEFT[:4],
        *RIGHT[:4],
        *[f"{a} {b}" for a, b in cells],
        *LEFT[4:],
        *RIGHT[4:],
    ]


def test_a_table_of_dates_and_wrapped_descriptions_keeps_its_rows() -> None:
    """A narrow first column (dates) beside long descriptions wrapped over two lines: a band of
    whitespace with several words a line on both sides, but the columns are far from equal."""
    rows = [
        ("April 1 - May 27, 2025", "Employees complete their mid-year self assessment before a"),
        ("", "one to one conversation with their supervisor"),
        ("May 28, 2025 at the latest", "Supervisor signs and submits the mid-year evaluation in"),
        ("", "HR Links for direct reports to review and acknowledge"),
        ("June 2, 2025 for everyone", "Mid-year due date for the fiscal year: the supervisor"),
        ("", "must override the review if the employee cannot act"),
    ]
    words: list[Word] = []
    for i, (a, b) in enumerate(rows):
        words += _words(a, 200, 400 + 60 * i, i) + _words(b, 1000, 400 + 60 * i, i)
    assert _texts(in_reading_order(words)) == [f"{a} {b}".strip() for a, b in rows]


def _block(block_id: str, text: str, left: float, top: float) -> dict[str, Any]:
    return {
        "BlockType": "LINE",
        "Id": block_id,
        "Text": text,
        "Confidence": 99.0,
        "Geometry": {"BoundingBox": {"Left": left, "Top": top, "Width": 0.4, "Height": 0.012}},
    }


def test_textract_lines_of_two_columns_come_column_by_column() -> None:
    """DetectDocumentText's answer (PAGE, its LINE children; API reference, Block) for a page
    whose two columns it lists top to bottom, alternating."""
    lines = []
    for i, (left, right) in enumerate(zip(LEFT, RIGHT, strict=True)):
        lines += [
            _block(f"l{i}", left, 0.08, 0.1 + 0.02 * i),
            _block(f"r{i}", right, 0.52, 0.1 + 0.02 * i),
        ]
    page = {
        "BlockType": "PAGE",
        "Id": "page",
        "Geometry": {"BoundingBox": {"Left": 0, "Top": 0, "Width": 1, "Height": 1}},
        "Relationships": [{"Type": "CHILD", "Ids": [b["Id"] for b in lines]}],
    }
    found = _lines([page, *lines])[1]
    assert [line.text for line in found] == [*LEFT, *RIGHT]
    assert found[0].left == pytest.approx(0.08) and found[0].width == pytest.approx(0.4)
