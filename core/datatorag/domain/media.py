"""The document types DatatoRAG reads: one table of extensions and media types.

The connector lists only these extensions, an announcement names the type its extension claims,
and the processor checks that claim against the bytes (``extract.detect``).
"""

from __future__ import annotations

import posixpath

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
UNKNOWN = "application/octet-stream"

EXTENSIONS: dict[str, str] = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".txt": TEXT,
    ".text": TEXT,
}
SUPPORTED_EXTENSIONS = frozenset(EXTENSIONS)
SUPPORTED_MEDIA_TYPES = frozenset(EXTENSIONS.values())


def suffix_of(filename: str) -> str:
    """The file's extension, lowercase, with its dot ("" when it has none)."""
    return posixpath.splitext(filename)[1].lower()


def extension_type(filename: str) -> str | None:
    """The media type a file name claims by its extension, or None for an unsupported one."""
    return EXTENSIONS.get(suffix_of(filename))


def is_supported(filename: str) -> bool:
    return suffix_of(filename) in SUPPORTED_EXTENSIONS
