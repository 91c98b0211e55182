"""PDF extraction on real corpus PDFs of both producers, checked against their ground truth."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from datatorag_processor.extract import ExtractedDocument, extract, plain_text
from tests.fixtures.corpus import (
    BROWSER_PRINT,
    LIBREOFFICE_HEADINGS,
    RULED_TABLE,
    TWO_COLUMN_WITH_TABLE,
    UNRULED_TABLE,
)

pytestmark = pytest.mark.unit

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_pages": 1000}


def _ws(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def _extract(path: Path) -> ExtractedDocument:
    return extract(path.read_bytes(), path.name, **LIMITS)


def _truth_paragraphs(truth: str) -> list[str]:
    """Truth blocks that are not table rows (those keep a TAB between cells)."""
    return [_ws(b) for b in truth.split("\n\n") if b.strip() and "\t" not in b]


def _truth_rows(truth: str) -> list[str]:
    return [b.strip("\n") for b in truth.split("\n\n") if "\t" in b]


def _page_texts(path: Path) -> list[str]:
    doc = pdfium.PdfDocument(path)
    try:
        return [_ws(doc[i].get_textpage().get_text_range()) for i in range(len(doc))]
    finally:
        doc.close()


@pytest.mark.parametrize(
    "name", [TWO_COLUMN_WITH_TABLE, BROWSER_PRINT, RULED_TABLE, UNRULED_TABLE, LIBREOFFICE_HEADINGS]
)
def test_text_matches_ground_truth(
    name: str, corpus_pdf: Callable[[str], Path], corpus_truth: Callable[[str], str]
) -> None:
    doc = _extract(corpus_pdf(name))
    truth = corpus_truth(name)
    text = _ws(plain_text(doc))
    ratio = difflib.SequenceMatcher(None, _words(text), _words(truth), autojunk=False).ratio()
    assert ratio >= 0.97, f"{name}: word-sequence similarity {ratio:.3f}"
    # Every longer paragraph of the truth comes out whole, across column and page breaks.
    for block in _truth_paragraphs(truth):
        if len(block.split()) >= 15:
            assert block in text, f"{name}: paragraph missing or broken: {block[:80]}"


def test_page_count_title_and_media_type(
    corpus_dir: Path, corpus_pdf: Callable[[str], Path]
) -> None:
    manifest = json.loads((corpus_dir / "manifest.json").read_text(encoding="utf-8"))
    titles = {d["id"]: d["title"] for d in manifest["documents"]}
    for name in (TWO_COLUMN_WITH_TABLE, UNRULED_TABLE):
        path = corpus_pdf(name)
        doc = _extract(path)
        assert doc.media_type == "application/pdf"
        assert doc.page_count == len(_page_texts(path))
        assert doc.title == titles[name.split("/", 1)[1]]


def test_running_headers_and_footers_are_dropped(corpus_pdf: Callable[[str], Path]) -> None:
    two_column = plain_text(_extract(corpus_pdf(TWO_COLUMN_WITH_TABLE)))
    raw = " ".join(_page_texts(corpus_pdf(TWO_COLUMN_WITH_TABLE)))
    assert "Internal - for employees" in raw and "Page 1 of" in raw  # they are on the pages
    assert "Internal - for employees" not in two_column
    assert not re.search(r"Page \d+ of \d+", two_column)

    browser = plain_text(_extract(corpus_pdf(BROWSER_PRINT)))
    assert "file://" in " ".join(_page_texts(corpus_pdf(BROWSER_PRINT)))
    assert "file://" not in browser
    assert not re.search(r"\d+/\d+/\d+, \d+:\d+ [AP]M", browser)  # Chromium's date header
    assert not re.search(r"(?m)^\d+/\d+$", browser)  # its "2/4" page numbers


def test_blocks_carry_the_page_they_are_on(corpus_pdf: Callable[[str], Path]) -> None:
    for name in (TWO_COLUMN_WITH_TABLE, LIBREOFFICE_HEADINGS):
        path = corpus_pdf(name)
        pages = _page_texts(path)
        doc = _extract(path)
        assert {b.page for b in doc.blocks} == set(range(1, len(pages) + 1))
        checked = 0
        for block in doc.blocks:
            words = block.text.split()
            if block.kind == "paragraph" and len(words) >= 8:
                start = " ".join(words[:5])
                assert block.page is not None
                assert start in pages[block.page - 1].replace("\ufffe", "-"), (name, start)
                checked += 1
        assert checked >= 5


def test_ruled_table_rows_keep_their_headers(
    corpus_pdf: Callable[[str], Path], corpus_truth: Callable[[str], str]
) -> None:
    doc = _extract(corpus_pdf(RULED_TABLE))
    rows = [b for b in doc.blocks if b.kind == "table_row"]
    # Tab-joined cells, row for row as in the truth (which keeps the TAB between cells).
    truth_rows = _truth_rows(corpus_truth(RULED_TABLE))
    assert [r.text for r in rows] == truth_rows
    assert rows[0].cells == ("Date", "Item") and rows[0].header == ()
    assert all(r.header == ("Date", "Item") for r in rows if r.cells != ("Date", "Item"))
    assert all(r.cells == tuple(r.text.split("\t")) for r in rows)


def test_unruled_table_across_pages(
    corpus_pdf: Callable[[str], Path], corpus_truth: Callable[[str], str]
) -> None:
    """LibreOffice draws no cell borders, repeats the header row on each page, breaks rows
    across pages and words inside narrow columns ("compensatio" / "n")."""
    doc = _extract(corpus_pdf(UNRULED_TABLE))
    rows = [b for b in doc.blocks if b.kind == "table_row"]
    truth_rows = [_ws(b) for b in _truth_rows(corpus_truth(UNRULED_TABLE))]
    assert [_ws(r.text) for r in rows][:3] == truth_rows[:3]
    assert len(rows) == len(truth_rows)  # the header row repeated on pages 2 and 3 is gone
    header = rows[0].cells
    assert header[0] == "If you want to..." and len(header) == 6
    assert all(r.header == header for r in rows[1:])
    assert {r.page for r in rows} == {1, 2}  # the last row starts on page 2, ends on page 3
    text = plain_text(doc)
    assert "compensation at the same time" in text
    assert "compensatio n" not in text


def test_headings_levels_and_paths(corpus_pdf: Callable[[str], Path]) -> None:
    doc = _extract(corpus_pdf(LIBREOFFICE_HEADINGS))
    headings = [b for b in doc.blocks if b.kind == "heading"]
    assert headings[0].text == doc.title and headings[0].level == 1
    assert all(h.level >= 2 for h in headings[1:])
    definitions = next(h for h in headings if h.text == "Definitions")
    assert definitions.headings == (doc.title,)
    after = doc.blocks[doc.blocks.index(definitions) + 1]
    assert after.kind == "paragraph" and after.headings == (doc.title, "Definitions")
    deeper = [h for h in headings if h.level > 2]
    assert deeper and all(len(h.headings) == h.level - 1 for h in deeper[:3])


def test_list_markers_are_removed(corpus_pdf: Callable[[str], Path]) -> None:
    for name in (BROWSER_PRINT, LIBREOFFICE_HEADINGS):
        doc = _extract(corpus_pdf(name))
        items = [b for b in doc.blocks if b.kind == "list_item"]
        assert len(items) >= 5
        for item in items:
            assert not re.match(r"^(?:[•◦▪\u2013-]|\d{1,2}[.)])\s", item.text), item.text
    numbered = _extract(corpus_pdf(BROWSER_PRINT))
    assert any(b.text.startswith("Normalize the discussion") for b in numbered.blocks)
