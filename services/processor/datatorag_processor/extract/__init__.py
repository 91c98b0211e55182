"""Document text extraction: bytes in, typed text blocks out.

``extract`` tells the format from the bytes (the file name is only a hint), refuses what it cannot
turn into text with a ``DocumentRejected`` whose message says what to do, and returns an
``ExtractedDocument``; ``plain_text`` is what gets chunked and what ``datatorag extract`` prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from datatorag.domain import media
from datatorag.domain.errors import DocumentRejected
from datatorag_processor.extract import detect
from datatorag_processor.extract.blocks import human_size
from datatorag_processor.extract.model import Block, BlockKind, ExtractedDocument

if TYPE_CHECKING:
    from datatorag_processor.extract.pdf_ocr import OcrOptions

__all__ = ["Block", "BlockKind", "DocumentRejected", "ExtractedDocument", "extract", "plain_text"]


def extract(
    data: bytes, filename: str, *, max_bytes: int, max_pages: int, ocr: OcrOptions | None = None
) -> ExtractedDocument:
    """Extract the text blocks of one document, or raise ``DocumentRejected`` with the reason.

    With ``ocr``, the pages of a PDF that have no text layer (scans) are read by OCR.
    """
    name = filename.rsplit("/", 1)[-1] or "the file"
    if not data:
        raise DocumentRejected(f"{name} is empty (0 bytes): upload the file again")
    if len(data) > max_bytes:
        raise DocumentRejected(
            f"{name} is {human_size(len(data))}, more than the limit of {human_size(max_bytes)}; "
            "split it or raise DATATORAG_MAX_DOCUMENT_BYTES"
        )
    media_type, what = detect.sniff(data, filename)
    claimed = media.extension_type(filename)
    if claimed is not None and claimed != media_type and not _text_kinds(claimed, media_type):
        raise DocumentRejected(
            f"not {detect.describe(claimed)}: {name} is {what} although its name ends in "
            f"{_extension(filename)}; rename it or upload the right file"
        )
    if media_type not in media.SUPPORTED_MEDIA_TYPES:
        raise DocumentRejected(
            f"{name} is {what} ({media_type}), which cannot be indexed; "
            "supported formats are PDF, Word (.docx), HTML, Markdown and plain text"
        )
    try:
        doc = _extract(media_type, data, max_bytes=max_bytes, max_pages=max_pages, ocr=ocr)
    except RecursionError:  # the same on every try: fail now rather than after the retries
        raise DocumentRejected(f"{name} is nested too deeply to read") from None
    if not any(block.text.strip() for block in doc.blocks):
        raise DocumentRejected(f"{name} contains no text to index")
    return doc


def plain_text(doc: ExtractedDocument) -> str:
    """Block texts separated by one blank line (no page markers, headers, footers or bullets)."""
    return "\n\n".join(block.text for block in doc.blocks if block.text.strip())


def _extract(
    media_type: str, data: bytes, *, max_bytes: int, max_pages: int, ocr: OcrOptions | None
) -> ExtractedDocument:
    if media_type == media.PDF:
        from datatorag_processor.extract.pdf import extract_pdf

        return extract_pdf(data, max_pages=max_pages, ocr=ocr)
    if media_type == media.DOCX:
        from datatorag_processor.extract.docx import extract_docx

        return extract_docx(data, max_bytes=max_bytes)
    text = detect.decode_text(data) or ""
    if media_type == media.HTML:
        from datatorag_processor.extract.html import extract_html

        return extract_html(text)
    if media_type == media.MARKDOWN:
        from datatorag_processor.extract.markdown import extract_markdown

        return extract_markdown(text)
    from datatorag_processor.extract.text import extract_text

    return extract_text(text)


def _text_kinds(claimed: str, found: str) -> bool:
    """Text formats overlap: a .md file may read as plain text, a .txt file may hold Markdown."""
    text_kinds = {media.TEXT, media.MARKDOWN, media.HTML}
    return claimed in text_kinds and found in text_kinds


def _extension(filename: str) -> str:
    base = filename.rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[-1] if "." in base else "(no extension)"
