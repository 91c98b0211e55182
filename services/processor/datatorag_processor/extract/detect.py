"""Tell a file's type from its bytes; the file name is only a hint (and is checked against them)."""

from __future__ import annotations

import io
import re
import zipfile

from datatorag.domain.media import DOCX, HTML, MARKDOWN, PDF, TEXT, extension_type

# Signatures of common formats we do not read, so a rejection can name what the file is.
_MAGIC: list[tuple[bytes, str, str]] = [
    (b"%PDF-", PDF, "a PDF"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "a PNG image"),
    (b"\xff\xd8\xff", "image/jpeg", "a JPEG image"),
    (b"GIF87a", "image/gif", "a GIF image"),
    (b"GIF89a", "image/gif", "a GIF image"),
    (b"II*\x00", "image/tiff", "a TIFF image"),
    (b"MM\x00*", "image/tiff", "a TIFF image"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "application/x-ole-storage",
        "an old Microsoft Office file (.doc/.xls/.ppt)",
    ),
    (b"{\\rtf", "application/rtf", "an RTF document"),
    (b"\x1f\x8b", "application/gzip", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "application/vnd.rar", "a RAR archive"),
    (b"\x7fELF", "application/x-executable", "a Linux executable"),
    (b"ID3", "audio/mpeg", "an MP3 audio file"),
    (b"OggS", "audio/ogg", "an Ogg media file"),
    (b"\x00\x00\x00\x18ftyp", "video/mp4", "an MP4 video"),
    (b"\x00\x00\x00\x1cftyp", "video/mp4", "an MP4 video"),
    (b"\x00\x00\x00 ftyp", "video/mp4", "an MP4 video"),
    (b"SQLite format 3\x00", "application/vnd.sqlite3", "an SQLite database"),
]
_ZIP = b"PK\x03\x04"
_HTML_START = re.compile(rb"^\s*(?:<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>])", re.I)
_HTML_TAG = re.compile(
    rb"<(?:html|head|body|p|div|h[1-6]|table|ul|ol|li|article|section|span|a\s)[\s>/]", re.I
)
_MARKDOWN_SIGNS = re.compile(
    r"^(?:#{1,6} \S|\s*[-*+] \S|\s*\d+\. \S|```|> \S|\|.*\|\s*$)|\[[^\]]+\]\([^)]+\)", re.M
)
_NAMES = {
    PDF: "a PDF",
    DOCX: "a Word document",
    HTML: "an HTML page",
    TEXT: "plain text",
    MARKDOWN: "Markdown text",
}


def sniff(data: bytes, filename: str = "") -> tuple[str, str]:
    """(media type, what it is in words) from the content; the name only splits text kinds."""
    head = data[:1024]
    for magic, media_type, words in _MAGIC:
        if head.startswith(magic):
            return media_type, words
    if head.startswith(_ZIP):
        return _sniff_zip(data)
    if b"%PDF-" in head:  # some producers put junk before the header; readers accept it
        return PDF, "a PDF"
    text = _as_text(data)
    if text is None:
        return "application/octet-stream", "binary data of an unknown kind"
    sample = text[:4096].encode("utf-8", "replace")
    hinted = extension_type(filename)
    if _HTML_START.match(sample) or (hinted == HTML and _HTML_TAG.search(sample)):
        return HTML, "an HTML page"
    if hinted == MARKDOWN or (hinted != TEXT and len(_MARKDOWN_SIGNS.findall(text[:8192])) >= 3):
        return MARKDOWN, "Markdown text"
    return TEXT, "plain text"


def describe(media_type: str) -> str:
    return _NAMES.get(media_type, media_type)


def _sniff_zip(data: bytes) -> tuple[str, str]:
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return "application/zip", "a damaged ZIP archive"
    if "word/document.xml" in names:
        return DOCX, "a Word document"
    if "xl/workbook.xml" in names:
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", (
            "an Excel workbook"
        )
    if "ppt/presentation.xml" in names:
        return "application/vnd.openxmlformats-officedocument.presentationml.presentation", (
            "a PowerPoint presentation"
        )
    if "content.xml" in names and "mimetype" in names:
        return "application/vnd.oasis.opendocument", "an OpenDocument file"
    return "application/zip", "a ZIP archive"


def decode_text(data: bytes) -> str | None:
    """The bytes as text (UTF-8/UTF-16 with BOM, UTF-8, else Windows-1252), or None if binary."""
    return _as_text(data)


def _as_text(data: bytes) -> str | None:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    sample = data[:65536]
    if b"\x00" in sample:
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            return None
    controls = sum(1 for c in text[:65536] if c < " " and c not in "\t\n\r\f")
    return None if controls > 0.01 * max(1, len(text[:65536])) else text
