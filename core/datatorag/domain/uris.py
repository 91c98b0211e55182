"""How a document's address is written: the URIs of source files and uploads."""

from __future__ import annotations

from urllib.parse import quote

# Characters left as they are in a URI path; the rest of ASCII is percent-encoded.
_URI_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/!$&'()*+,;=:@"
)


def quote_path(path: str) -> str:
    """Percent-encode what would break a URI (space, '%', '#', '?'); keep non-ASCII readable."""
    return "".join(c if c in _URI_SAFE or ord(c) > 127 else quote(c, safe="") for c in path)


def upload_uri(tenant: str, filename: str) -> str:
    """The address of a document uploaded over the API (``filename`` already sanitised)."""
    return f"upload://{tenant}/{quote_path(filename)}"
