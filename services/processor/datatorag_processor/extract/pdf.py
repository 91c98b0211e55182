"""PDF extraction with pdfium: text layer, drawings (table rules) and fonts, all from one parse.

pdfium keeps column order and reads a page in a few milliseconds. Tables are rebuilt from
character positions, inside ruling lines where the table has them, only on pages whose lines or
drawings look tabular. (pdfplumber's table finder was measured at 0.4-0.6 s on a Chromium table
page, ten times the cost of embedding that page, so it is not used.)
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from datatorag.domain.errors import DocumentRejected
from datatorag_processor.extract.blocks import first_heading, with_heading_paths
from datatorag_processor.extract.model import ExtractedDocument
from datatorag_processor.extract.pdf_layout import (
    Assembler,
    PageLines,
    body_size,
    drop_running_lines,
    line_pitch,
    vocabulary,
)
from datatorag_processor.extract.pdf_lines import PageText, fix_surrogates, page_lines
from datatorag_processor.extract.pdf_ocr import OcrOptions, read_scanned_pages
from datatorag_processor.extract.pdf_tables import (
    Rules,
    aligned_tables,
    looks_tabular,
    page_rules,
    ruled_tables,
)

MEDIA_TYPE = "application/pdf"
_UNTITLED = ("untitled", "microsoft word", "document", "slide")


def extract_pdf(data: bytes, *, max_pages: int, ocr: OcrOptions | None = None) -> ExtractedDocument:
    """Blocks of the PDF's text layer; with ``ocr``, pages without one are read by OCR."""
    import pypdfium2 as pdfium

    with ExitStack() as stack:
        doc = _open(pdfium, data)
        stack.callback(doc.close)
        count = len(doc)
        if count == 0:
            raise DocumentRejected("the PDF has no pages")
        if count > max_pages:
            raise DocumentRejected(
                f"the PDF has {count} pages, more than the limit of {max_pages}; "
                "split it or raise DATATORAG_MAX_DOCUMENT_PAGES"
            )
        title = _metadata_title(doc)
        try:
            pages, tabular = _read_pages(doc, count, stack)
            scanned = read_scanned_pages(doc, pages, ocr) if ocr else []
        except pdfium.PdfiumError:
            raise DocumentRejected(
                "a page of the PDF is damaged and cannot be read: export or download it again"
            ) from None
        if not any(page.lines for page in pages):
            raise DocumentRejected(
                f"the PDF has no text layer (its {count} page{'s' if count > 1 else ''} hold only "
                "images, e.g. a scan): run OCR on it (e.g. ocrmypdf) and upload the result"
            )
        for number in scanned:  # the table finders read the text layer, which OCR lines lack
            tabular.pop(number, None)
        body = body_size(pages)
        drop_running_lines(pages, title, body)
        vocab = vocabulary(pages)
        _find_tables(pages, tabular, body, vocab)
        body = body_size(pages, skip=_table_lines(pages))  # tables often use a smaller font
        blocks = Assembler(pages, body, line_pitch(pages, body), vocab).run()
    if not blocks:
        raise DocumentRejected("the PDF contains no text apart from page headers and footers")
    final = with_heading_paths(blocks)
    return ExtractedDocument(
        title=title or first_heading(final),
        blocks=final,
        page_count=count,
        media_type=MEDIA_TYPE,
        ocr_pages=tuple(scanned),
    )


def _open(pdfium: Any, data: bytes) -> Any:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as err:
        code = getattr(err, "err_code", None)
        if code == pdfium.raw.FPDF_ERR_PASSWORD:
            raise DocumentRejected(
                "the PDF is password-protected: upload a copy without a password"
            ) from None
        if code == pdfium.raw.FPDF_ERR_SECURITY:
            raise DocumentRejected(
                "the PDF uses an encryption scheme that cannot be opened: "
                "upload an unencrypted copy"
            ) from None
        raise DocumentRejected(
            "the PDF is damaged or truncated and cannot be read: export or download it again"
        ) from None


def _metadata_title(doc: Any) -> str | None:
    try:
        title = str(doc.get_metadata_value("Title")).strip()
    except Exception:  # noqa: BLE001 - metadata is optional; a broken Info dict is not fatal
        return None
    if not title or title.lower().startswith(_UNTITLED) or title.lower().endswith(".docx"):
        return None
    return fix_surrogates(title)


@dataclass
class _TablePage:
    """What the table finders need of a page that looks tabular (kept open until then)."""

    text: PageText
    handle: Any
    rules: Rules | None


def _read_pages(
    doc: Any, count: int, stack: ExitStack
) -> tuple[list[PageLines], dict[int, _TablePage]]:
    """Every page's lines; pages that may hold a table stay open for the table finders, the
    others are closed at once (a text page holds every character's geometry)."""
    pages: list[PageLines] = []
    tabular: dict[int, _TablePage] = {}
    previous = False
    for index in range(count):
        page = doc[index]
        textpage = page.get_textpage()
        height = float(page.get_height())
        text = PageText(textpage, height)
        lines = page_lines(text, index + 1)
        pages.append(PageLines(index + 1, height, lines))
        rules = page_rules(page, height, force=False)
        # A table may go on from the page before without looking like one at its top.
        looks = looks_tabular(lines, rules, height)
        keep = looks or previous
        if keep:
            stack.callback(page.close)
            stack.callback(textpage.close)
            tabular[index + 1] = _TablePage(text, page, rules)
        else:
            textpage.close()
            page.close()
        previous = looks
    return pages, tabular


def _table_lines(pages: list[PageLines]) -> set[int]:
    return {line_id for page in pages for table in page.tables for line_id in table.lines}


def _find_tables(
    pages: list[PageLines], tabular: dict[int, _TablePage], body: float, vocab: set[str]
) -> None:
    for page in pages:
        found = tabular.get(page.number)
        if found is None:
            continue
        rules = found.rules or page_rules(found.handle, page.height, force=True)
        if rules is not None and rules.vertical:
            page.tables = ruled_tables(found.text, page.lines, rules, page.number, vocab)
        if not page.tables:
            page.tables = aligned_tables(found.text, page.lines, page.number, body, vocab)
