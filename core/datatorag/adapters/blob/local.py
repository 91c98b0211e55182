"""BlobStore on the local file system: one file per key under a root directory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from datatorag.domain.blob_keys import RESERVED_PREFIX, validate_key
from datatorag.domain.errors import BlobNotFound, InvalidKey


class LocalBlobStore:
    """Files under ``root``; writes go to a temporary file (named ``RESERVED_PREFIX...``, which
    ``list`` skips) then ``os.replace`` (atomic)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*validate_key(key).split("/"))
        # A symlink inside the root must not lead outside it either.
        if not path.resolve().is_relative_to(self.root):
            raise InvalidKey(f"blob key {key!r} resolves outside the store")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=RESERVED_PREFIX, dir=path.parent)
        except (NotADirectoryError, FileExistsError) as err:
            raise InvalidKey(f"blob key {key!r} runs through an existing object") from err
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except IsADirectoryError as err:
            raise InvalidKey(f"blob key {key!r} is a prefix of other keys") from err
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as err:
            raise BlobNotFound(key) from err

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except (IsADirectoryError, NotADirectoryError, PermissionError):
            # A directory (a prefix of other keys) or a path through a file: no such object.
            # PermissionError is what unlink() raises on a directory on some systems.
            if path.is_file():
                raise

    def list(self, prefix: str) -> Iterator[str]:
        """Keys starting with ``prefix`` (a plain string prefix, as on S3), sorted."""
        validate_key(prefix, prefix=True)
        # Walk only the deepest directory the prefix names fully.
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root.joinpath(*head.split("/")) if head else self.root
        keys: list[str] = []
        for dirpath, _dirs, files in os.walk(start):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            base = "" if rel == "." else rel + "/"
            keys.extend(
                base + name
                for name in files
                if not name.startswith(RESERVED_PREFIX) and (base + name).startswith(prefix)
            )
        return iter(sorted(keys))
