"""SecretStore on the blob store, each secret encrypted with Fernet (AES-128-CBC + HMAC-SHA256).

https://cryptography.io/en/latest/fernet/ : authenticated encryption, so a secret encrypted with
another key, or tampered with, is refused (``SecretUnreadable``) rather than read as garbage.
The key comes from ``DATATORAG_SECRETS_KEY``; for local use, without one, a key is generated
into ``<data_dir>/secrets.key`` (mode 0600) on first run. Objects: ``system/secrets/<name>``.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from datatorag.domain.errors import BlobNotFound, SecretNotFound, SecretUnreadable
from datatorag.domain.secrets import check_secret_name
from datatorag.ports import BlobStore

SECRETS_PREFIX = "system/secrets/"


class FernetSecretStore:
    def __init__(self, blobs: BlobStore, key: bytes) -> None:
        self.blobs = blobs
        self._fernet = Fernet(key)  # ValueError for a key that is not 32 url-safe base64 bytes

    def put(self, name: str, value: str) -> None:
        self.blobs.put(_key(name), self._fernet.encrypt(value.encode()))

    def get(self, name: str) -> str:
        try:
            token = self.blobs.get(_key(name))
        except BlobNotFound:
            raise SecretNotFound(f"no secret {name!r}") from None
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:
            raise SecretUnreadable(
                f"secret {name!r} cannot be decrypted with DATATORAG_SECRETS_KEY: set it again"
            ) from None

    def delete(self, name: str) -> None:
        self.blobs.delete(_key(name))


def _key(name: str) -> str:
    return SECRETS_PREFIX + check_secret_name(name)


def local_key(path: Path) -> bytes:
    """The key in ``path``, created (readable by this user only) when there is none yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
        try:
            os.link(draft, path)  # atomic, and refused if another process made it first
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_bytes().strip()
