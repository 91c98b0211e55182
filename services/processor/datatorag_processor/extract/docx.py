"""Word documents through python-docx: body paragraphs and tables in document order."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any
from xml.etree.ElementTree import ParseError

from datatorag.domain.errors import DocumentRejected
from datatorag_processor.extract.blocks import (
    clean,
    first_heading,
    human_size,
    strip_marker,
    table_rows,
    with_heading_paths,
)
from datatorag_processor.extract.model import Block, ExtractedDocument

MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_HEADING_STYLE = re.compile(r"^(?:heading|überschrift|titre|título)\s*(\d)$", re.IGNORECASE)
_MONO = re.compile(r"mono|courier|consol|code", re.IGNORECASE)
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def extract_docx(data: bytes, *, max_bytes: int) -> ExtractedDocument:
    """``max_bytes`` bounds the unpacked package too: XML packs tightly, so the file's size
    alone does not bound the parsing work (a 60 kB file can hold 17 MB of XML)."""
    _check_unpacked_size(data, max_bytes)
    document = _open(data)
    blocks: list[Block] = []
    for element in document.element.body.iterchildren():
        if element.tag == f"{_W}p":
            block = _paragraph(element, document)
            if block is not None:
                blocks.append(block)
        elif element.tag == f"{_W}tbl":
            blocks.extend(table_rows(_table_cells(element, document)))
    final = with_heading_paths(blocks)
    title = (document.core_properties.title or "").strip()
    return ExtractedDocument(
        title=title or first_heading(final),
        blocks=final,
        page_count=None,
        media_type=MEDIA_TYPE,
    )


def _check_unpacked_size(data: bytes, max_bytes: int) -> None:
    """Refuse, before parsing, a package whose parts unpack to more than ``max_bytes``.

    The sizes come from the ZIP directory; ``zipfile`` never unpacks more than a part declares.
    """
    try:
        parts = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # damaged: _open says so
    total = sum(part.file_size for part in parts)  # python-docx reads every part it uses
    if total > max_bytes:
        raise DocumentRejected(
            f"the Word document unpacks to {human_size(total)}, more than the limit of "
            f"{human_size(max_bytes)}; split it or raise DATATORAG_MAX_DOCUMENT_BYTES"
        )


def _open(data: bytes) -> Any:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        return docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ParseError, ValueError):
        raise DocumentRejected(
            "the Word document is damaged and cannot be read: "
            "open and save it again in Word or LibreOffice"
        ) from None
    except Exception as err:  # lxml raises its own XML errors for broken parts
        if type(err).__module__.startswith("lxml"):
            raise DocumentRejected(
                "the Word document holds damaged XML and cannot be read; "
                "open and save it again in Word or LibreOffice"
            ) from None
        raise


def _paragraph(element: Any, document: Any) -> Block | None:
    from docx.text.paragraph import Paragraph

    paragraph = Paragraph(element, document)
    text = clean(paragraph.text)
    if not text:
        return None
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    heading = _HEADING_STYLE.match(style)
    if heading:
        return Block("heading", text.replace("\n", " "), level=min(int(heading.group(1)), 6))
    if style.lower() in ("title",):
        return Block("heading", text.replace("\n", " "), level=1)
    numbered = element.find(f"{_W}pPr/{_W}numPr") is not None
    if numbered or "list" in style.lower():
        return Block("list_item", strip_marker(text)[1])
    if _is_code(paragraph, style):
        return Block("code", paragraph.text.strip("\n"))
    marked, rest = strip_marker(text)
    return Block("list_item", rest) if marked else Block("paragraph", text)


def _is_code(paragraph: Any, style: str) -> bool:
    if _MONO.search(style) or "source" in style.lower():
        return True
    fonts = [run.font.name for run in paragraph.runs if run.text.strip()]
    return bool(fonts) and all(f and _MONO.search(f) for f in fonts)


def _table_cells(element: Any, document: Any) -> list[list[str]]:
    """Cell texts row by row; a merged cell counts once."""
    from docx.table import Table

    rows: list[list[str]] = []
    for row in Table(element, document).rows:
        seen: set[int] = set()
        cells: list[str] = []
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(clean(cell.text).split("\n")))
        rows.append(cells)
    return rows
