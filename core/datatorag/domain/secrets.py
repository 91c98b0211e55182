"""Secret names: one rule for every ``SecretStore`` adapter (a blob key, a Secrets Manager name)."""

from __future__ import annotations

import re

from datatorag.domain.errors import InvalidKey

_WORD = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}"
SECRET_NAME = re.compile(rf"{_WORD}(?:/{_WORD}){{0,7}}")


def check_secret_name(name: str) -> str:
    """``name`` itself, or ``InvalidKey`` (no ``..``, no leading dot or slash, at most 8 parts)."""
    if not SECRET_NAME.fullmatch(name) or ".." in name:
        raise InvalidKey(f"invalid secret name {name!r}")
    return name
