"""Where things live in the blob store: every key the services write is built here.

Per tenant, ``tenants/<tenant>/raw/<doc_id>/<version><suffix>`` holds a document's raw bytes and
``tenants/<tenant>/chunks/<doc_id>/<version>.json`` its chunk set; ``system/`` holds what every
process shares (API keys, registered sources, signing secrets, portal sessions). ``validate_key``
is the rule every blob store applies, so a key that works on S3 also works on disk.
"""

from __future__ import annotations

from datatorag.domain.errors import InvalidKey

API_KEYS_PREFIX = "system/api-keys/"
SOURCES_PREFIX = "system/sources/"  # records, no credentials (usecases/sources.py)
REQUESTS_PREFIX = "system/sync-requests/"  # syncs asked for: the API writes, the connector takes
HISTORY_PREFIX = "system/sync-history/"  # the last syncs of each source (the connector writes)
SIGNING_SECRETS_PREFIX = "system/signing-secrets/"
PORTAL_SESSIONS_PREFIX = "system/portal-sessions/"


def raw_prefix(tenant: str, doc_id: str) -> str:
    return f"tenants/{tenant}/raw/{doc_id}/"


def activity_prefix(tenant: str) -> str:
    """The tenant's question and audit log, when it lives in the blob store (S3)."""
    return f"tenants/{tenant}/activity/"


def chunks_prefix(tenant: str, doc_id: str) -> str:
    return f"tenants/{tenant}/chunks/{doc_id}/"


def raw_key(tenant: str, doc_id: str, version: str, suffix: str) -> str:
    """One version's raw bytes; ``suffix`` is the file's extension, lowercase, with its dot."""
    return f"{raw_prefix(tenant, doc_id)}{version}{suffix}"


def chunks_key(tenant: str, doc_id: str, version: str) -> str:
    return f"{chunks_prefix(tenant, doc_id)}{version}.json"


def document_prefixes(tenant: str, doc_id: str) -> tuple[str, str]:
    """Every prefix under which a document's files are kept (its raw versions, its chunk sets)."""
    return raw_prefix(tenant, doc_id), chunks_prefix(tenant, doc_id)


# No key segment may start with this: the local store names its temporary files so (before the
# atomic rename), and every backend refuses the same keys.
RESERVED_PREFIX = ".tmp-"


def validate_key(key: str, *, prefix: bool = False) -> str:
    """Return ``key`` if it is a safe relative ``/``-separated name, else raise ``InvalidKey``.

    Every backend applies the same rule so a key that works on S3 also works on disk. With
    ``prefix=True`` the empty string and a trailing ``/`` are allowed (list prefixes).
    """
    if not key:
        if prefix:
            return key
        raise InvalidKey("blob key is empty")
    if "\x00" in key or "\\" in key:
        raise InvalidKey(f"blob key {key!r} contains a NUL or backslash")
    if key.startswith("/"):
        raise InvalidKey(f"blob key {key!r} is absolute")
    parts = key.split("/")
    if prefix and parts[-1] == "":
        parts = parts[:-1]
    for part in parts:
        if part in {"", ".", ".."}:
            raise InvalidKey(f"blob key {key!r} has an empty, '.' or '..' segment")
        if part.startswith(RESERVED_PREFIX):
            raise InvalidKey(f"blob key {key!r} uses the reserved prefix {RESERVED_PREFIX!r}")
    return key
