"""A folder on this machine (a plain path or a ``file://`` URI).

Symbolic links are followed only when they resolve to a file inside the folder: a link to
``/etc/passwd`` is left out of the listing and refused by ``read``.
"""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from datatorag.domain.errors import SourceError
from datatorag.domain.media import is_supported
from datatorag.domain.uris import quote_path
from datatorag.log import get_logger
from datatorag_connector.sources.base import (
    MAX_DEPTH,
    BaseSource,
    Listing,
    SourceFile,
    UnsafePath,
    check_relative_path,
    is_hidden,
    is_safe_name,
    join_relative,
)

log = get_logger(__name__)


class LocalSource(BaseSource):
    def __init__(self, folder: str | os.PathLike[str], *, max_bytes: int) -> None:
        shown = Path(os.path.abspath(Path(folder).expanduser()))  # as named, links kept
        try:
            root = shown.resolve(strict=True)
        except (OSError, RuntimeError) as err:  # RuntimeError: a symbolic link loop
            raise SourceError(f"folder not found: {os.fspath(folder)!r}") from err
        if not root.is_dir():
            raise SourceError(f"not a folder: {str(root)!r}")
        self.root = root
        super().__init__("file://" + quote_path(shown.as_posix()), max_bytes)

    def listing(self) -> Listing:
        found = Listing()
        self._walk(self.root, "", 0, found)
        found.files.sort(key=lambda f: f.path)
        return found

    def read(self, file: SourceFile) -> bytes:
        real = self._inside_root(self.root / check_relative_path(file.path))
        if real is None:
            raise UnsafePath(f"{self.uri_of(file)} leads outside the source folder")
        try:
            # O_NOFOLLOW: the resolved path must not have become a link since it was checked;
            # O_NONBLOCK: a FIFO put in place of a file must not hang the connector.
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
            fd = os.open(real, flags)
        except OSError as err:
            raise SourceError(f"cannot read {self.uri_of(file)}: {err.strerror}") from err
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise SourceError(f"{self.uri_of(file)} is not a regular file")
            self._check_size(file, info.st_size)
            data = handle.read(self.max_bytes + 1)  # the file may have grown since fstat
        self._check_size(file, len(data))
        return data

    def _walk(self, folder: Path, rel: str, depth: int, out: Listing) -> None:
        if depth > MAX_DEPTH:
            log.warning("source.too_deep", source=self.display_uri, folder=rel)
            return
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            self._unlisted(out, rel, err.strerror or type(err).__name__)
            return
        for entry in entries:
            if is_hidden(entry.name):
                continue
            if not is_safe_name(entry.name):
                log.warning("source.unsafe_name", source=self.display_uri, name=repr(entry.name))
                continue
            self._visit(entry, join_relative(rel, entry.name), depth, out)

    def _visit(self, entry: os.DirEntry[str], rel: str, depth: int, out: Listing) -> None:
        try:
            if entry.is_dir(follow_symlinks=False):
                self._walk(Path(entry.path), rel, depth + 1, out)
                return
            if not is_supported(entry.name):
                return
            if entry.is_symlink() and self._inside_root(Path(entry.path)) is None:
                log.warning("source.link_outside_root", source=self.display_uri, path=rel)
                return
            info = entry.stat(follow_symlinks=True)
        except OSError:  # vanished, or a dangling link
            return
        # Links to folders are not followed (loops); links to files inside the root are.
        if stat.S_ISREG(info.st_mode):
            modified = datetime.fromtimestamp(info.st_mtime, tz=UTC)
            out.files.append(SourceFile(path=rel, size=info.st_size, modified=modified))

    def _inside_root(self, path: Path) -> Path | None:
        """The real path behind ``path`` if it stays inside the root, else None."""
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        return real if real.is_relative_to(self.root) and real != self.root else None
