"""Document sources: where the connector finds documents.

``open_source(uri)`` accepts:

- a folder path or ``file:///abs/folder``;
- ``ftp://user:password@host:21/folder`` (passive mode) and ``ftps://...`` (explicit TLS,
  verified against the system CAs or ``DATATORAG_FTPS_CA_FILE``);
- ``sftp://user@host:22/folder`` (password in the URI or ``DATATORAG_SFTP_PASSWORD``, or a key
  file ``DATATORAG_SFTP_KEY_FILE``; host keys from ``DATATORAG_SFTP_KNOWN_HOSTS`` or
  ``~/.ssh/known_hosts``; unknown hosts refused unless ``DATATORAG_SFTP_TRUST_UNKNOWN_HOSTS=1``).

HR systems and S3 (each module cites the vendor's documentation):

- ``bamboohr://API_KEY@company`` (company files; ``?access_token=`` for OAuth instead,
  ``?shared_only=no`` to index files not shared with employees);
- ``workday://CLIENT_ID:CLIENT_SECRET@host/TENANT?refresh_token=...&report=OWNER/REPORT``
  (Help articles; workers from a RaaS custom report);
- ``rippling://API_TOKEN@company`` and ``adp://CLIENT_ID:CLIENT_SECRET@company?cert_file=...
  &key_file=...`` (or the files ``DATATORAG_ADP_CERT_FILE`` and ``DATATORAG_ADP_KEY_FILE``):
  workers only (no documents);
- ``s3://bucket/prefix`` (``?queue=`` an SQS queue that receives the bucket's event
  notifications, for immediate updates).

Every HTTP-based kind takes ``?api_base=http://host:port`` in place of the vendor's scheme and
host. Workday and ADP get their OAuth token when opened; BambooHR, Rippling and S3 have no
login step, so their credentials are first tried by the listing. An HR system that knows the
tenant's workers also implements ``ports.EmployeeFeed``.

Remote folder paths are absolute on the server; ``/~/folder`` is relative to the login folder.
An FTP password may also come from ``DATATORAG_FTP_PASSWORD``. Keyword arguments override the
environment, which overrides nothing in the URI except a missing password.
"""

from __future__ import annotations

import getpass
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from datatorag.domain.errors import SourceError
from datatorag.domain.uris import quote_path
from datatorag_connector.sources.base import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT_S,
    SECRET_QUERY_WORDS,
    FileTooLarge,
    Listing,
    Source,
    SourceFile,
    UnsafePath,
    check_relative_path,
    display_netloc,
    redact_uri,
    source_id_for,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FileTooLarge",
    "Listing",
    "Location",
    "Source",
    "SourceError",
    "SourceFile",
    "UnsafePath",
    "check_relative_path",
    "open_source",
    "parse_location",
    "redact_uri",
    "source_id_of",
    "uri_secrets",
]

SUPPORTED_SCHEMES = ("file", "ftp", "ftps", "sftp")
HR_SCHEMES = ("bamboohr", "workday", "rippling", "adp")
_DEFAULT_PORTS = {"ftp": 21, "ftps": 21, "sftp": 22}
_TRUE = {"1", "true", "yes", "on"}
T = TypeVar("T")


@dataclass(frozen=True)
class Location:
    """A parsed source URI. ``password`` is kept out of ``repr``."""

    scheme: str  # file, ftp, ftps or sftp
    path: str  # local folder, or the folder on the server ('/' when the URI has none)
    host: str = ""
    port: int = 0
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def display_uri(self) -> str:
        if self.scheme == "file":
            return "file://" + quote_path(self.path)
        return f"{self.scheme}://{display_netloc(self.host, self.port)}{quote_path(self.path)}"

    @property
    def source_id(self) -> str:
        return source_id_for(self.display_uri)


def parse_location(uri: str) -> Location:
    """Split ``uri`` into its parts; local paths are made absolute. Raises ``SourceError``."""
    if "://" not in uri:
        if not uri.strip():
            raise SourceError("empty source: give a folder path or a URI")
        return Location("file", os.path.abspath(os.path.expanduser(uri)))
    shown = redact_uri(uri)
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as err:
        raise SourceError(f"invalid source URI {shown}: {err}") from None
    scheme = parts.scheme.lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise SourceError(
            f"unsupported source scheme {scheme!r} in {shown}: "
            "use a folder path, file://, ftp://, ftps://, sftp://, s3://, bamboohr://, "
            "workday://, rippling:// or adp://"
        )
    if scheme == "file":
        if parts.netloc not in {"", "localhost"}:
            raise SourceError(f"file:// URIs must name a local folder, not a host: {shown}")
        return Location("file", os.path.abspath(unquote(parts.path)))
    if not parts.hostname:
        raise SourceError(f"no host in source URI {shown}")
    return Location(
        scheme=scheme,
        path=posixpath.normpath("/" + unquote(parts.path).lstrip("/")),
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[scheme],
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def open_source(
    uri: str,
    *,
    password: str | None = None,
    key_file: str | os.PathLike[str] | None = None,
    known_hosts: str | os.PathLike[str] | None = None,
    trust_unknown_hosts: bool | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT_S,
    environ: Mapping[str, str] | None = None,
) -> Source:
    """Open the source at ``uri`` (connecting and logging in now). Raises ``SourceError``.

    Use the result as a context manager, or call ``close()``.
    """
    env = os.environ if environ is None else environ
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in HR_SCHEMES:
        return _open_hr_system(scheme, uri, max_bytes=max_bytes, timeout=timeout, environ=env)
    if scheme == "s3":
        from datatorag_connector.sources.s3 import S3Source

        return S3Source.from_uri(uri, max_bytes=max_bytes, environ=env)
    where = parse_location(uri)
    if where.scheme == "file":
        from datatorag_connector.sources.local import LocalSource

        return LocalSource(where.path, max_bytes=max_bytes)
    if where.scheme in {"ftp", "ftps"}:
        from datatorag_connector.sources.ftp import FtpSource

        return FtpSource(
            host=where.host,
            port=where.port,
            user=where.user or "anonymous",
            password=_first(password, where.password, env.get("DATATORAG_FTP_PASSWORD")) or "",
            root=where.path,
            tls=where.scheme == "ftps",
            ca_file=_path(ca_file, env.get("DATATORAG_FTPS_CA_FILE")),
            max_bytes=max_bytes,
            timeout=timeout,
        )
    from datatorag_connector.sources.sftp import SftpSource  # paramiko: imported only when used

    trust = trust_unknown_hosts
    if trust is None:
        trust = env.get("DATATORAG_SFTP_TRUST_UNKNOWN_HOSTS", "").strip().lower() in _TRUE
    return SftpSource(
        host=where.host,
        port=where.port,
        user=where.user or getpass.getuser(),
        password=_first(password, where.password, env.get("DATATORAG_SFTP_PASSWORD")),
        key_file=_path(key_file, env.get("DATATORAG_SFTP_KEY_FILE")),
        known_hosts=_path(known_hosts, env.get("DATATORAG_SFTP_KNOWN_HOSTS")),
        trust_unknown_hosts=trust,
        root=where.path,
        max_bytes=max_bytes,
        timeout=timeout,
    )


def _open_hr_system(
    scheme: str, uri: str, *, max_bytes: int, timeout: float, environ: Mapping[str, str]
) -> Source:
    from datatorag_connector.sources.http import parse_api_uri

    where = parse_api_uri(uri)
    if scheme == "bamboohr":
        from datatorag_connector.sources.bamboohr import BambooHRSource

        return BambooHRSource(where, max_bytes=max_bytes, timeout=timeout)
    if scheme == "workday":
        from datatorag_connector.sources.workday import WorkdaySource

        return WorkdaySource(where, max_bytes=max_bytes, timeout=timeout)
    if scheme == "rippling":
        from datatorag_connector.sources.rippling import RipplingSource

        return RipplingSource(where, max_bytes=max_bytes, timeout=timeout)
    from datatorag_connector.sources.adp import AdpSource

    return AdpSource(
        where,
        max_bytes=max_bytes,
        timeout=timeout,
        cert_file=environ.get("DATATORAG_ADP_CERT_FILE") or None,
        key_file=environ.get("DATATORAG_ADP_KEY_FILE") or None,
    )


def uri_secrets(uri: str) -> list[str]:
    """Every credential ``uri`` holds (user, password, secret query values): to scrub from logs."""
    try:
        parts = urlsplit(uri)
        found = [unquote(parts.username or ""), unquote(parts.password or "")]
    except ValueError:
        return []
    found += [v for k, v in parse_qsl(parts.query) if k.lower() != "api_base" and _secret(k)]
    return [s for s in found if s]


def _secret(name: str) -> bool:
    return any(word in name.lower() for word in SECRET_QUERY_WORDS)


def source_id_of(uri: str) -> str:
    """The id ``open_source(uri)`` would give, without connecting. Raises ``SourceError``."""
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in HR_SCHEMES:
        from datatorag_connector.sources.http import parse_api_uri

        return source_id_for(parse_api_uri(uri).display_uri)
    if scheme == "s3":
        from datatorag_connector.sources.s3 import display_uri, parse_s3_uri

        bucket, prefix, _ = parse_s3_uri(uri)
        return source_id_for(display_uri(bucket, prefix))
    return parse_location(uri).source_id


def _first(*values: T | None) -> T | None:
    for value in values:
        if value is not None and value != "":
            return value
    return None


def _path(given: str | os.PathLike[str] | None, from_env: str | None) -> str | None:
    value = os.fspath(given) if given is not None else from_env
    return value or None
