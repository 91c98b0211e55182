"""Scanned pages of a PDF: the pages with no usable text layer are rendered and read by OCR.

A page is read by OCR when its text layer holds almost no text (``MIN_LAYER_CHARS`` letters and
digits) and it draws something (an image or vector shapes); pages with text keep the fast path,
so a PDF that mixes both keeps its page numbers. The OCR lines become ``Line`` objects placed on
the page in points, so the layout code (running headers, paragraphs, headings) applies to them as
to a text layer. Every page is checked before OCR is paid for: a blank page or one too small to
hold readable text is skipped, and a document none of whose pages can be read fails with the
reason for each page.
"""

from __future__ import annotations

import io
import re
import statistics
import time
from dataclasses import dataclass
from typing import Any

import pypdfium2.raw as pdfium_c

from datatorag.domain.errors import DocumentRejected, OcrTimeout
from datatorag.ports import Ocr, OcrLine
from datatorag_processor.extract.pdf_layout import PageLines
from datatorag_processor.extract.pdf_lines import Line

MIN_LAYER_CHARS = 20  # fewer letters and digits than this in the text layer: read the page by OCR
MIN_SIDE_PT = 72.0  # a page narrower or lower than an inch holds no readable text
BLANK_STDDEV = 2.0  # grey-level spread of an empty scan (paper grain, JPEG noise)
MAX_PIXELS = 40_000_000  # a poster-sized page is rendered at less than the set resolution
MIN_CONFIDENCE = 40.0  # lines read with less (mean word confidence, 0-100) are noise
OCR_FONT = "OCR"  # the font name OCR lines carry (OCR gives no font)
_DRAWN = (pdfium_c.FPDF_PAGEOBJ_IMAGE, pdfium_c.FPDF_PAGEOBJ_PATH)
# Tesseract reads a round bullet as one of these; a lone one before a word is a list marker.
_BULLET = re.compile(r"^[e¢©«»°o*•·◦]\s+(?=\S)")


@dataclass(frozen=True)
class OcrOptions:
    """How scanned pages are read: the OCR backend and the per-document budget."""

    ocr: Ocr
    dpi: int = 300
    max_pages: int = 100  # scanned pages read per document
    timeout_s: float = 300.0  # for rendering and reading all of a document's scanned pages


def read_scanned_pages(doc: Any, pages: list[PageLines], options: OcrOptions) -> list[int]:
    """Replace the lines of scanned pages with what OCR reads on them; their page numbers.

    Raises ``DocumentRejected`` when there are more scanned pages than the budget allows, or
    when no page of the document has any text and some could not be read (with the reasons).
    """
    started = time.monotonic()
    scanned = [page for page in pages if _layer_chars(page.lines) < MIN_LAYER_CHARS]
    images: list[tuple[PageLines, float, float, bytes]] = []
    unreadable: list[str] = []
    for page in scanned:
        handle = doc[page.number - 1]
        try:
            if not _draws(handle):
                continue  # an empty page, or one with a short text layer only
            width, height = float(handle.get_width()), float(handle.get_height())
            if min(width, height) < MIN_SIDE_PT:
                unreadable.append(f"page {page.number} is too small to hold readable text")
                continue
            if len(images) == options.max_pages:
                raise DocumentRejected(
                    f"the PDF has more than {options.max_pages} scanned pages (no text layer) to "
                    "read by OCR; split it or raise DATATORAG_OCR_MAX_PAGES"
                )
            image = _render(handle, options.dpi)
        finally:
            handle.close()
        if image is None:
            unreadable.append(f"page {page.number} is blank")
        else:
            images.append((page, width, height, image))
    if images:
        left = options.timeout_s - (time.monotonic() - started)
        try:
            results = options.ocr.recognise([i[3] for i in images], timeout_s=max(left, 0.001))
        except OcrTimeout:
            raise OcrTimeout(
                f"reading the {len(images)} scanned pages took longer than the OCR budget of "
                f"{options.timeout_s:g} s; split the PDF or raise DATATORAG_OCR_TIMEOUT_S"
            ) from None
        read = _place(images, results, unreadable)
    else:
        read = []
    if unreadable and not any(page.lines for page in pages):
        raise DocumentRejected(
            "no text could be read from the PDF (it has no text layer and OCR found none): "
            + "; ".join(unreadable[:5])
            + ("; ..." if len(unreadable) > 5 else "")
        )
    return read


def _layer_chars(lines: list[Line]) -> int:
    return sum(c.isalnum() for line in lines for c in line.text)


def _draws(page: Any) -> bool:
    return any(True for _ in page.get_objects(filter=_DRAWN))


def _render(page: Any, dpi: int) -> bytes | None:
    """The page as a greyscale PNG at ``dpi``, or None when it is blank."""
    from PIL import ImageStat

    width, height = float(page.get_width()), float(page.get_height())
    scale = min(dpi / 72, 0.999 * (MAX_PIXELS / (width * height)) ** 0.5)  # pdfium rounds up
    image = page.render(scale=scale, grayscale=True).to_pil().convert("L")
    if ImageStat.Stat(image).stddev[0] < BLANK_STDDEV:
        return None
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(round(scale * 72),) * 2)
    return out.getvalue()


def _place(
    images: list[tuple[PageLines, float, float, bytes]],
    results: list[list[OcrLine]],
    unreadable: list[str],
) -> list[int]:
    """Put each page's OCR lines on it (in points); the numbers of the pages that got text."""
    placed: list[tuple[PageLines, list[Line]]] = []
    for (page, width, height, _), found in zip(images, results, strict=True):
        lines = [_line(o, page.number, width, height) for o in found if _legible(o)]
        if _layer_chars(lines) <= _layer_chars(page.lines):
            if not page.lines:
                unreadable.append(f"page {page.number} holds no text OCR can read (a picture?)")
            continue
        placed.append((page, lines))
    _even_sizes([line for _, lines in placed for line in lines])
    for page, lines in placed:
        page.lines = lines
    return [page.number for page, _ in placed]


def _legible(line: OcrLine) -> bool:
    return line.confidence >= MIN_CONFIDENCE and any(c.isalnum() for c in line.text)


def _line(found: OcrLine, page: int, width: float, height: float) -> Line:
    top, box = found.top * height, found.height * height
    x0 = found.left * width
    return Line(
        text=_BULLET.sub("• ", found.text),
        start=0,
        end=0,
        x0=x0,
        x1=x0 + found.width * width,
        y=top + 0.8 * box,  # the baseline sits about a fifth of the line box above its bottom
        size=box / 1.2,  # a line box spans ascenders to descenders, about 1.2 font sizes
        bold=False,
        font=OCR_FONT,
        page=page,
    )


def _even_sizes(lines: list[Line]) -> None:
    """Set lines within 20% of the usual size to it exactly: a line box grows and shrinks with
    the letters on it (ascenders, descenders, capitals), which the layout would take for a change
    of font size and break paragraphs at."""
    if not lines:
        return
    usual = statistics.median(line.size for line in lines)
    for line in lines:
        if abs(line.size - usual) <= 0.2 * usual:
            line.size = usual
