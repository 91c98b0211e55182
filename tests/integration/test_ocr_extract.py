"""Scanned PDFs read by the real Tesseract: accuracy, page numbers, robustness, budgets, failures.

The scans are corpus PDFs rendered to images and wrapped as image-only PDFs (tests/fixtures/
scans.py), so what OCR reads can be compared with what the text layer says.
"""

from __future__ import annotations

import io
import itertools
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rapidfuzz.distance import Levenshtein

from datatorag.adapters.ocr.tesseract import TesseractOcr, parse_tsv
from datatorag.domain.errors import DocumentRejected, OcrTimeout, PermanentError
from datatorag_processor.extract import extract, plain_text
from datatorag_processor.extract.pdf_ocr import OcrOptions
from tests.fixtures.corpus import LIBREOFFICE_HEADINGS, RULED_TABLE, TWO_COLUMN_NARROW_GUTTER
from tests.fixtures.scans import images_pdf, mixed_pdf, scan_images, scan_pdf

pytestmark = pytest.mark.integration

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_pages": 1000}
OCR = OcrOptions(TesseractOcr(), dpi=300)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]|_", " ", text.lower())).strip()


def _similarity(a: str, b: str) -> float:
    return float(Levenshtein.normalized_similarity(_norm(a), _norm(b)))


def _page_text(doc: object, page: int) -> str:
    return " ".join(b.text for b in doc.blocks if b.page == page)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def source(corpus_pdf: Callable[[str], Path]) -> bytes:
    return corpus_pdf(LIBREOFFICE_HEADINGS).read_bytes()  # prose, lists and headings


@pytest.fixture(scope="module")
def text_layer(source: bytes) -> object:
    return extract(source, "work-schedules.pdf", **LIMITS)


def test_a_scanned_pdf_reads_like_its_text_layer(source: bytes, text_layer: object) -> None:
    scanned = scan_pdf(source, [0, 1])
    doc = extract(scanned, "scan.pdf", **LIMITS, ocr=OCR)
    assert doc.ocr_pages == (1, 2)
    assert {b.page for b in doc.blocks} == {1, 2}
    for page in (1, 2):
        assert _similarity(_page_text(doc, page), _page_text(text_layer, page)) > 0.98
    # The layout logic applies to OCR lines: list items are told from paragraphs.
    assert any(b.kind == "list_item" for b in doc.blocks)


def test_without_ocr_a_scan_is_still_refused_with_its_reason(source: bytes) -> None:
    with pytest.raises(DocumentRejected, match="no text layer"):
        extract(scan_pdf(source, [0]), "scan.pdf", **LIMITS)


def test_a_mixed_pdf_keeps_its_page_numbers_and_reads_only_the_scanned_page(
    source: bytes, text_layer: object
) -> None:
    doc = extract(mixed_pdf(source, [1]), "mixed.pdf", **LIMITS, ocr=OCR)
    count = text_layer.page_count  # type: ignore[attr-defined]
    assert doc.ocr_pages == (2,) and doc.page_count == count >= 3
    for page in (1, *range(3, count + 1)):  # text pages come out as from the text layer
        assert _page_text(doc, page) == _page_text(text_layer, page)
    assert _similarity(_page_text(doc, 2), _page_text(text_layer, 2)) > 0.98


@pytest.mark.parametrize(
    ("scan", "least"),
    [({"skew_degrees": 3.0}, 0.93), ({"contrast": 0.3}, 0.95), ({"dpi": 150}, 0.93)],
    ids=["skewed-3-degrees", "low-contrast", "150-dpi-scan"],
)
def test_robust_to_poor_scans(
    source: bytes, text_layer: object, scan: dict[str, float], least: float
) -> None:
    doc = extract(scan_pdf(source, [0], **scan), "scan.pdf", **LIMITS, ocr=OCR)
    assert _similarity(_page_text(doc, 1), _page_text(text_layer, 1)) > least


def test_a_scanned_table_keeps_its_words_and_rows_in_order(
    corpus_pdf: Callable[[str], Path],
) -> None:
    """OCR reads a table line by line across its columns (no cell structure): every cell's words
    are there and the rows come in their order, though a cell wrapped over two lines is split."""
    pdf = corpus_pdf(RULED_TABLE).read_bytes()
    truth = extract(pdf, "table.pdf", **LIMITS)
    rows = [b for b in truth.blocks if b.kind == "table_row" and b.page == 1]
    assert len(rows) > 10, "the corpus page holds a ruled table"
    doc = extract(scan_pdf(pdf, [0]), "table-scan.pdf", **LIMITS, ocr=OCR)
    text = _norm(plain_text(doc))
    words = text.split()
    cell_words = [w for row in rows for cell in row.cells for w in _norm(cell).split()]
    assert sum(w in words for w in cell_words) >= 0.97 * len(cell_words)
    assert "|" not in plain_text(doc)  # ruling lines are not read as characters
    leads = [" ".join(_norm(max(row.cells, key=len)).split()[:3]) for row in rows]
    found, at = 0, 0
    for lead in leads:  # each row after the one before it
        place = text.find(lead, at)
        if place >= 0:
            found, at = found + 1, place + 1
    assert found >= 0.9 * len(rows), leads


def test_a_two_column_scan_is_read_column_by_column(
    corpus_pdf: Callable[[str], Path], corpus_truth: Callable[[str], str]
) -> None:
    """On this page's narrow gutter Tesseract runs its lines across both columns (0.47 similarity
    before the column order); read column by column it scored 0.974 (the rest is the running
    header and footer, which a one-page scan cannot tell from text)."""
    pdf = corpus_pdf(TWO_COLUMN_NARROW_GUTTER).read_bytes()
    doc = extract(scan_pdf(pdf), "two-columns.pdf", **LIMITS, ocr=OCR)
    text = _norm(plain_text(doc))
    assert _similarity(text, corpus_truth(TWO_COLUMN_NARROW_GUTTER)) > 0.95
    in_order = [  # each column's lines whole and in turn, the spanning table between
        "is a tool created in online university olu to help gsa employees enhance their",
        "skills so that they can better meet the evolving challenges of their job idp resources",
        "idp resources site description online university olu site where idps are created",
        "for a change in grade series or fields idps and conference event and training requests",
        "most conference event and training requests that have a cost for more information",
    ]
    for passage in in_order:
        assert passage in text
    assert text.index(in_order[2]) < text.index(in_order[3]) < text.index(in_order[4])


def test_page_budget(source: bytes) -> None:
    options = OcrOptions(TesseractOcr(), max_pages=2)
    with pytest.raises(
        DocumentRejected, match=r"more than 2 scanned pages.*DATATORAG_OCR_MAX_PAGES"
    ):
        extract(scan_pdf(source, [0, 1, 2]), "scan.pdf", **LIMITS, ocr=options)


def test_time_budget_kills_tesseract_and_fails_the_document(source: bytes) -> None:
    options = OcrOptions(TesseractOcr(), timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(
        OcrTimeout, match=r"3 scanned pages .* budget of 0.5 s.*OCR_TIMEOUT_S"
    ) as caught:
        extract(scan_pdf(source, [0, 1, 2]), "scan.pdf", **LIMITS, ocr=options)
    assert isinstance(caught.value, PermanentError)  # the same on every try: fail at once
    assert time.monotonic() - started < 10  # rendering plus half a second, not three pages of OCR


def test_unreadable_pages_fail_with_the_reason_for_each() -> None:
    from PIL import Image

    blank = Image.new("L", (1700, 2200), 250)
    noise = Image.effect_noise((1700, 2200), 90).convert("L")
    tiny = Image.new("L", (100, 100), 255)
    tiny.paste(0, (20, 40, 80, 60))  # a black bar on a page 0.5 inch wide
    pdf = images_pdf([blank, noise])
    with pytest.raises(DocumentRejected) as caught:
        extract(pdf, "scan.pdf", **LIMITS, ocr=OCR)
    reason = str(caught.value)
    assert "page 1 is blank" in reason and "page 2 holds no text OCR can read" in reason
    with pytest.raises(DocumentRejected, match="page 1 is too small"):
        extract(images_pdf([tiny]), "stamp.pdf", **LIMITS, ocr=OCR)


def test_a_blank_scanned_page_among_readable_ones_is_skipped(source: bytes) -> None:
    from PIL import Image

    pages = scan_images(source, [0])
    pages.append(Image.new("L", pages[0].size, 255))  # type: ignore[attr-defined]
    doc = extract(images_pdf(pages), "scan.pdf", **LIMITS, ocr=OCR)
    assert doc.ocr_pages == (1,) and doc.page_count == 2


def test_a_missing_tesseract_is_a_clear_permanent_failure(source: bytes) -> None:
    options = OcrOptions(TesseractOcr(binary="/nonexistent/tesseract"))
    with pytest.raises(PermanentError, match=r"not installed.*tesseract-ocr"):
        extract(scan_pdf(source, [0]), "scan.pdf", **LIMITS, ocr=options)


def test_tesseract_lines_keep_reading_order_and_boxes(source: bytes) -> None:
    image = io.BytesIO()
    scan_images(source, [0], dpi=300)[0].save(image, "PNG")  # type: ignore[attr-defined]
    [lines] = TesseractOcr().recognise([image.getvalue()], timeout_s=60)
    assert len(lines) > 10
    tops = [line.top for line in lines]
    assert sum(a > b for a, b in itertools.pairwise(tops)) <= 2  # top to bottom, bar columns
    for line in lines:
        assert 0 <= line.left < 1 and 0 <= line.top < 1 and 0 < line.width <= 1
        assert 0 <= line.confidence <= 100


def test_parse_tsv_groups_words_into_lines() -> None:
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\t"
    header += "left\ttop\twidth\theight\tconf\ttext"
    rows = [
        "1\t1\t0\t0\t0\t0\t0\t0\t1000\t2000\t-1\t",
        "4\t1\t1\t1\t1\t0\t100\t200\t300\t40\t-1\t",
        "5\t1\t1\t1\t1\t1\t100\t200\t120\t40\t96.5\tAnnual",
        "5\t1\t1\t1\t1\t2\t240\t205\t160\t30\t90.5\tleave",
        "5\t1\t1\t1\t2\t1\t100\t260\t50\t30\t-1\t ",
        '5\t1\t2\t1\t1\t1\t500\t900\t100\t40\t80\t"quoted"',
    ]
    lines = parse_tsv("\n".join([header, *rows]))
    assert [line.text for line in lines] == ["Annual leave", '"quoted"']
    first = lines[0]
    assert (first.left, first.top, first.width, first.height) == (0.1, 0.1, 0.3, 0.02)
    assert first.confidence == pytest.approx(93.5)


def test_a_poster_sized_page_is_rendered_within_the_pixel_cap() -> None:
    import pypdfium2 as pdfium
    from PIL import Image

    from datatorag_processor.extract.pdf_ocr import MAX_PIXELS, _render

    poster = Image.new("L", (3000, 3000), 255)  # at 72 dpi: a page 3000 points (1.06 m) square
    poster.paste(0, (100, 100, 900, 200))
    doc = pdfium.PdfDocument(images_pdf([poster], dpi=72))
    try:
        png = _render(doc[0], 300)
    finally:
        doc.close()
    assert png is not None
    width, height = Image.open(io.BytesIO(png)).size
    assert 0.9 * MAX_PIXELS < width * height <= MAX_PIXELS  # not the 156 MP 300 dpi would take
