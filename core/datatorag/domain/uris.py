"""How addresses are written: the URIs of source files and uploads, and source URIs as people
may see them (without user, password or secret-looking query values).

Shared by the connector (logs, document URIs) and the query API (uploads, source listings).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit, urlunsplit

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


# Query parameters whose values are treated as secrets when a URI is shown.
SECRET_QUERY_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "credential", "sig")


def display_netloc(host: str, port: int) -> str:
    host = host.lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def redact_uri(uri: str) -> str:
    """``uri`` without user, password or secret-looking query values; for messages and logs."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URI>"
    netloc = host if port is None else display_netloc(host, port)
    query = urlencode(
        [
            (k, "REDACTED" if any(w in k.lower() for w in SECRET_QUERY_WORDS) else v)
            for k, v in _parse_query(parts.query)
        ]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _parse_query(query: str) -> list[tuple[str, str]]:
    pairs = []
    for item in query.split("&"):
        if item:
            key, _, value = item.partition("=")
            pairs.append((key, value))
    return pairs
