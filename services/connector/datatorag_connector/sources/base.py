"""What every document source offers, and the checks they share.

Names that come from a server or a folder are data, not paths: each one is checked with
``is_safe_name`` before it becomes part of a ``SourceFile.path``, and ``check_relative_path``
checks a path again before it is read. A source never writes anything to the local disk.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from datatorag.domain.errors import DocumentRejected, SourceError
from datatorag.domain.uris import SECRET_QUERY_WORDS as SECRET_QUERY_WORDS  # re-exported
from datatorag.domain.uris import display_netloc as display_netloc  # re-exported
from datatorag.domain.uris import quote_path as quote_path  # re-exported
from datatorag.domain.uris import redact_uri as redact_uri  # re-exported
from datatorag.log import get_logger

log = get_logger(__name__)

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # same default as Settings.max_document_bytes
DEFAULT_TIMEOUT_S = 30.0
MAX_DEPTH = 32  # folders nested deeper are not walked (guards against loops on odd servers)

# Bidirectional overrides make "fdp.exe" display as "exe.pdf"; no document name needs them.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class FileTooLarge(SourceError, DocumentRejected):
    """A file over the source's size limit: the document is rejected, the source is fine."""


class UnsafePath(SourceError):
    """A path that could leave the source's root (``..``, absolute, control characters)."""


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the source's root, '/'-separated, checked by check_relative_path
    size: int
    modified: datetime | None  # timezone-aware (UTC) when the server tells it
    # What the source says of this file, in the processor's vocabulary (``countries``,
    # ``regions``, ``employment_types``, ``departments``, ``tags``, ``title``): it wins over
    # what the processor derives from the text. Folders and FTP servers say nothing.
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        check_relative_path(self.path)  # raises UnsafePath: no SourceFile can point outside


@dataclass
class Listing:
    """What one walk of a source found.

    A folder that could not be listed (permissions, a broken name) is named in ``unlisted``:
    its files are unknown, not gone, so a sync must not treat them as removed.
    """

    files: list[SourceFile] = field(default_factory=list)
    unlisted: dict[str, str] = field(default_factory=dict)  # folder URI -> reason

    def may_hold(self, uri: str) -> bool:
        """True if ``uri`` lies under a folder that could not be listed."""
        return any(uri.startswith(folder + "/") for folder in self.unlisted)


@runtime_checkable
class Source(Protocol):
    """Where documents come from: a folder (local, FTP, SFTP), an S3 prefix or an HR system.

    Use as a context manager or call ``close``.
    """

    source_id: str  # "src_" + sha256(display_uri)[:12]: stable across runs and credentials
    display_uri: str  # the URI without user, password or secret query parameters

    def listing(self) -> Listing:
        """Every supported document under the root, recursively, sorted by path.

        Hidden files and folders (name starting with '.'), unsafe names and links that lead
        outside the root are left out. A subfolder that cannot be listed is named in
        ``Listing.unlisted``; ``SourceError`` when the root cannot be listed.
        """

    def list_files(self) -> list[SourceFile]:
        """``listing().files``."""

    def read(self, file: SourceFile) -> bytes:
        """The file's bytes. Raises ``FileTooLarge`` over the size limit, else ``SourceError``."""

    def uri_of(self, file: SourceFile) -> str:
        """``display_uri + "/" + path``: the document's address as shown to people."""

    def close(self) -> None: ...


def is_safe_name(name: str) -> bool:
    """True for one path component that cannot escape or disguise itself."""
    if name in {"", ".", ".."} or "/" in name or "\\" in name:
        return False
    for char in name:
        category = unicodedata.category(char)
        # Cc: NUL, newline and other controls; Cs: undecodable bytes (surrogate escapes).
        if category in {"Cc", "Cs"} or char in _BIDI_CONTROLS:
            return False
    return True


def is_hidden(name: str) -> bool:
    return name.startswith(".")


def check_relative_path(path: str) -> str:
    """Return ``path`` if every component is safe, else raise ``UnsafePath``."""
    if not path or path.startswith("/") or not all(is_safe_name(p) for p in path.split("/")):
        raise UnsafePath(f"unsafe path in source: {path!r}")
    return path


def join_relative(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def source_id_for(display_uri: str) -> str:
    return "src_" + hashlib.sha256(display_uri.encode()).hexdigest()[:12]


def scrub(message: str, *secrets: str | None) -> str:
    """Remove secrets a library may have echoed into an error message."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


class BaseSource:
    """Shared behaviour: the URI of a file, context management, a readable repr."""

    source_id: str
    display_uri: str

    def __init__(self, display_uri: str, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.display_uri = display_uri
        self.source_id = source_id_for(display_uri)
        self.max_bytes = max_bytes

    def list_files(self) -> list[SourceFile]:
        return self.listing().files

    def listing(self) -> Listing:
        raise NotImplementedError

    def uri_of(self, file: SourceFile) -> str:
        return self._uri_of_path(check_relative_path(file.path))

    def _uri_of_path(self, path: str) -> str:
        return self.display_uri.rstrip("/") + "/" + quote_path(path)

    def _unlisted(self, listing: Listing, folder: str, reason: str) -> None:
        """``folder`` (relative, '' for the root) could not be listed.

        The root fails the whole listing; a subfolder is recorded so that a sync keeps the
        documents under it rather than removing them.
        """
        if not folder:
            raise SourceError(f"cannot list {self.display_uri}: {reason}")
        log.warning(
            "source.unreadable_folder", source=self.display_uri, folder=folder, reason=reason
        )
        listing.unlisted[self._uri_of_path(folder)] = reason

    def close(self) -> None:
        """Release connections; nothing to do for a local folder."""

    def __enter__(self) -> BaseSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_uri!r})"

    def _check_size(self, file: SourceFile, size: int) -> None:
        if size > self.max_bytes:
            raise FileTooLarge(
                f"{self.uri_of(file)} is {size} bytes, over the limit of {self.max_bytes} bytes"
            )
