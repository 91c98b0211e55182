"""A folder on an FTP server (``ftp://``), or FTP with explicit TLS (``ftps://``, AUTH TLS).

Passive mode; directories are listed with MLSD (RFC 3659) when the server has it, else LIST
(Unix or MS-DOS format), else NLST plus SIZE. Every name the server sends is checked with
``is_safe_name``: a listing cannot make the client ask for ``../`` or an absolute path. Links
cannot be resolved over FTP; the server's own root confinement applies to them.

Names travel as UTF-8 (RFC 2640). A name that is not UTF-8 (a legacy Latin-1 server) is kept
byte for byte on the wire and shown with its odd bytes read as Latin-1.
"""

from __future__ import annotations

import codecs
import contextlib
import ftplib
import functools
import posixpath
import re
import ssl
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from datatorag.domain.errors import SourceError
from datatorag.domain.media import is_supported
from datatorag.domain.uris import quote_path
from datatorag.log import get_logger
from datatorag_connector.sources.base import (
    MAX_DEPTH,
    BaseSource,
    FileTooLarge,
    Listing,
    SourceFile,
    check_relative_path,
    display_netloc,
    is_hidden,
    is_safe_name,
    join_relative,
    scrub,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

log = get_logger(__name__)
T = TypeVar("T")

# ftplib takes an encoding name only: this codec is UTF-8 with bytes that are not UTF-8 kept
# as surrogate escapes, so a listed name goes back to the server (RETR, CWD) unchanged.
_WIRE_ENCODING = "datatorag_ftp_names"
_UNSUPPORTED = {"500", "502", "504"}  # reply codes meaning "command not implemented"
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_UNIX_LINE = re.compile(
    r"^(?P<type>[-dlbcps])\S{9}\S*\s+\d+\s+\S+\s+(?:\S+\s+)?(?P<size>\d+)\s+"
    r"(?P<month>[A-Za-z]{3})\s+(?P<day>\d{1,2})\s+(?P<time>\d{1,2}:\d{2}|\d{4}) (?P<name>.+)$"
)
_DOS_LINE = re.compile(
    r"^(?P<date>\d{2}-\d{2}-\d{2,4})\s+(?P<time>\d{1,2}:\d{2}[AP]M)\s+"
    r"(?P<size><DIR>|\d+)\s+(?P<name>.+)$"
)


class Entry(NamedTuple):
    name: str
    kind: str  # "file", "dir" or "other" (links, devices, unparsable)
    size: int
    modified: datetime | None


class _ConnectionLost(Exception):
    """Internal: the control connection broke; reconnect and try once more."""


class FtpSource(BaseSource):
    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str,
        password: str,
        root: str,
        tls: bool,
        ca_file: str | None,
        max_bytes: int,
        timeout: float,
    ) -> None:
        scheme = "ftps" if tls else "ftp"
        super().__init__(f"{scheme}://{display_netloc(host, port)}{quote_path(root)}", max_bytes)
        self._host, self._port, self._user, self._password = host, port, user, password
        self._root_spec, self._tls, self._ca_file, self._timeout = root, tls, ca_file, timeout
        self._ftp: ftplib.FTP | None = None
        self._base = ""  # absolute path of the root on the server, set on login
        self._listing = "mlsd"  # downgraded to "list", then "nlst", when the server lacks it
        # Server paths of listed files whose names are not UTF-8 on the server (by shown path).
        self._wire_paths: dict[str, str] = {}
        self._connect()

    # --- public API

    def listing(self) -> Listing:
        def walk(ftp: ftplib.FTP) -> Listing:
            found = Listing()
            self._wire_paths = {}
            self._walk(ftp, "", self._base, 0, found)
            found.files.sort(key=lambda f: f.path)
            return found

        return self._run(walk)

    def read(self, file: SourceFile) -> bytes:
        path = check_relative_path(file.path)
        remote = self._wire_paths.get(path) or self._remote(path)
        self._check_size(file, file.size)
        return self._run(lambda ftp: self._retrieve(ftp, file, remote))

    def close(self) -> None:
        ftp, self._ftp = self._ftp, None
        if ftp is not None:
            try:
                ftp.quit()
            except (OSError, EOFError, ftplib.Error):
                ftp.close()

    # --- connection

    def _connect(self) -> ftplib.FTP:
        # Errors are raised "from None": a chained library error is not scrubbed of secrets.
        ftp = self._new_client()
        try:
            ftp.connect(self._host, self._port, timeout=self._timeout)
        except (OSError, EOFError, ftplib.Error) as err:
            ftp.close()
            raise SourceError(f"cannot connect to {self.display_uri}: {self._clean(err)}") from None
        try:
            ftp.login(self._user, self._password)
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()  # encrypt the data connections too, not just the login
            ftp.set_pasv(True)
            ftp.voidcmd("TYPE I")
            self._base = self._resolve_root(ftp)
        except ftplib.error_perm as err:
            ftp.close()
            raise SourceError(
                f"FTP login refused for user {self._user!r} at {self.display_uri}: "
                f"{self._clean(err)}"
            ) from None
        except (OSError, EOFError, ftplib.Error) as err:
            ftp.close()
            raise SourceError(
                f"FTP session failed at {self.display_uri}: {self._clean(err)}"
            ) from None
        self._ftp = ftp
        return ftp

    def _new_client(self) -> ftplib.FTP:
        if not self._tls:
            # Plain FTP is what was asked for.
            return ftplib.FTP(timeout=self._timeout, encoding=_WIRE_ENCODING)  # noqa: S321
        context = ssl.create_default_context(cafile=self._ca_file)
        return ftplib.FTP_TLS(  # noqa: S321 - TLS
            context=context, timeout=self._timeout, encoding=_WIRE_ENCODING
        )

    def _resolve_root(self, ftp: ftplib.FTP) -> str:
        """The root as an absolute server path ('/~' means the login folder)."""
        parts = self._root_spec.strip("/").split("/")
        if parts[0] != "~":
            return posixpath.normpath("/" + "/".join(parts))
        home = ftp.pwd()
        return posixpath.normpath(posixpath.join(home, *parts[1:]))

    def _run(self, operation: Callable[[ftplib.FTP], T]) -> T:
        """Run ``operation``; if the connection dropped (idle timeout), reconnect once."""
        for attempt in (1, 2):
            ftp = self._ftp or self._connect()
            try:
                return operation(ftp)
            except _ConnectionLost as lost:
                self._drop()
                if attempt == 2:
                    raise SourceError(
                        f"connection to {self.display_uri} lost: {self._clean(lost)}"
                    ) from lost
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        ftp, self._ftp = self._ftp, None
        if ftp is not None:
            ftp.close()

    def _clean(self, err: BaseException) -> str:
        return _readable(scrub(str(err) or type(err).__name__, self._password))

    def _remote(self, rel: str) -> str:
        return posixpath.join(self._base, rel) if rel else self._base

    # --- listing

    def _walk(self, ftp: ftplib.FTP, rel: str, remote: str, depth: int, out: Listing) -> None:
        """List the folder shown as ``rel``, ``remote`` on the server, into ``out``."""
        if depth > MAX_DEPTH:
            log.warning("source.too_deep", source=self.display_uri, folder=rel)
            return
        try:
            entries = self._list_dir(ftp, remote)
        except ftplib.error_perm as err:
            self._unlisted(out, rel, self._clean(err))
            return
        seen: set[str] = set()
        for entry in sorted(entries, key=lambda e: e.name):
            name = _readable(entry.name)
            if is_hidden(name) or name in seen:
                continue
            seen.add(name)
            if not is_safe_name(name):
                log.warning("source.unsafe_name", source=self.display_uri, name=repr(name))
                continue
            child, child_remote = join_relative(rel, name), posixpath.join(remote, entry.name)
            if entry.kind == "dir":
                self._walk(ftp, child, child_remote, depth + 1, out)
            elif entry.kind == "file" and is_supported(name):
                out.files.append(SourceFile(path=child, size=entry.size, modified=entry.modified))
                if child_remote != self._remote(child):
                    self._wire_paths[child] = child_remote

    def _list_dir(self, ftp: ftplib.FTP, path: str) -> list[Entry]:
        while True:
            try:
                if self._listing == "mlsd":
                    return [_mlsd_entry(n, f) for n, f in _guard(lambda: list(ftp.mlsd(path)))]
                if self._listing == "list":
                    return _parse_list(_guard(lambda: self._lines(ftp, path, "LIST")))
                return self._nlst_entries(ftp, path)
            except ftplib.error_perm as err:
                if str(err)[:3] not in _UNSUPPORTED or self._listing == "nlst":
                    raise
                self._listing = "list" if self._listing == "mlsd" else "nlst"
                log.info("source.ftp_listing_fallback", source=self.display_uri, to=self._listing)

    @staticmethod
    def _lines(ftp: ftplib.FTP, path: str, command: str) -> list[str]:
        # Change into the folder and list without an argument: some servers read a listed
        # name that starts with '-' as options.
        ftp.cwd(path)
        lines: list[str] = []
        ftp.retrlines(command, lines.append)
        return lines

    def _nlst_entries(self, ftp: ftplib.FTP, path: str) -> list[Entry]:
        names = _guard(lambda: self._lines(ftp, path, "NLST"))
        _guard(lambda: ftp.voidcmd("TYPE I"))  # retrlines switched to ASCII, where SIZE is refused
        entries = []
        for name in names:
            if is_hidden(name) or not is_safe_name(_readable(name)):
                entries.append(Entry(name, "other", 0, None))  # reported and skipped by _walk
                continue
            entries.append(_guard(functools.partial(_probe, ftp, posixpath.join(path, name), name)))
        return entries

    # --- reading

    def _retrieve(self, ftp: ftplib.FTP, file: SourceFile, remote: str) -> bytes:
        chunks: list[bytes] = []
        total = 0

        def collect(block: bytes) -> None:
            nonlocal total
            total += len(block)
            if total > self.max_bytes:
                raise _Oversize
            chunks.append(block)

        try:
            _guard(lambda: ftp.retrbinary("RETR " + remote, collect, blocksize=65536))
        except _Oversize:
            self._drop()  # the transfer was cut mid-way; the control connection is out of step
            raise FileTooLarge(
                f"{self.uri_of(file)} is over the limit of {self.max_bytes} bytes"
            ) from None
        except ftplib.error_perm as err:
            raise SourceError(f"cannot read {self.uri_of(file)}: {self._clean(err)}") from err
        return b"".join(chunks)


class _Oversize(Exception):
    pass


def _readable(text: str) -> str:
    """``text`` with each byte that was not UTF-8 on the wire read as Latin-1 instead."""
    return "".join(chr(ord(c) - 0xDC00) if "\udc80" <= c <= "\udcff" else c for c in text)


class _WireDecoder(codecs.BufferedIncrementalDecoder):
    def _buffer_decode(self, data: ReadableBuffer, errors: str, final: bool) -> tuple[str, int]:
        return codecs.utf_8_decode(data, "surrogateescape", final)


class _WireEncoder(codecs.IncrementalEncoder):
    def encode(self, text: str, final: bool = False) -> bytes:
        return text.encode("utf-8", "surrogateescape")


def _wire_encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
    return text.encode("utf-8", "surrogateescape"), len(text)


def _wire_decode(data: ReadableBuffer, errors: str = "strict") -> tuple[str, int]:
    return codecs.utf_8_decode(data, "surrogateescape", True)


def _find_wire_codec(name: str) -> codecs.CodecInfo | None:
    if name != _WIRE_ENCODING:
        return None
    return codecs.CodecInfo(
        _wire_encode,
        _wire_decode,
        incrementalencoder=_WireEncoder,
        incrementaldecoder=_WireDecoder,
        name=_WIRE_ENCODING,
    )


codecs.register(_find_wire_codec)


def _guard(call: Callable[[], T]) -> T:
    """Turn connection-level failures into ``_ConnectionLost``; let FTP replies through."""
    try:
        return call()
    except (OSError, EOFError, ftplib.error_temp, ftplib.error_reply, ftplib.error_proto) as err:
        raise _ConnectionLost(str(err) or type(err).__name__) from err


def _probe(ftp: ftplib.FTP, path: str, name: str) -> Entry:
    """What NLST does not say: file (SIZE answers) or folder (CWD works)."""
    try:
        size = ftp.size(path)
    except ftplib.error_perm:
        try:
            ftp.cwd(path)
        except ftplib.error_perm:
            return Entry(name, "other", 0, None)
        return Entry(name, "dir", 0, None)
    modified = None
    with contextlib.suppress(ftplib.error_perm):
        modified = _parse_mlsx_time(ftp.voidcmd("MDTM " + path)[4:].strip())
    return Entry(name, "file", size or 0, modified)


def _mlsd_entry(name: str, facts: dict[str, str]) -> Entry:
    kind = facts.get("type", "").lower()
    if kind not in {"file", "dir"}:  # cdir, pdir, OS.unix=slink:..., devices
        kind = "other"
    try:
        size = int(facts.get("size", "0"))
    except ValueError:
        size = 0
    return Entry(name, kind, size, _parse_mlsx_time(facts.get("modify", "")))


def _parse_mlsx_time(value: str) -> datetime | None:
    """RFC 3659 time-val: YYYYMMDDHHMMSS[.sss], always UTC."""
    try:
        return datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _parse_list(lines: Iterable[str], now: datetime | None = None) -> list[Entry]:
    """Entries of a LIST reply in Unix ``ls -l`` or MS-DOS format; other lines are ignored."""
    now = now or datetime.now(UTC)
    entries = []
    for line in lines:
        entry = _parse_unix_line(line, now) or _parse_dos_line(line)
        if entry is not None:
            entries.append(entry)
    return entries


def _parse_unix_line(line: str, now: datetime) -> Entry | None:
    match = _UNIX_LINE.match(line)
    if match is None:
        return None
    kind = {"-": "file", "d": "dir"}.get(match["type"], "other")
    month = _MONTHS.get(match["month"].lower())
    modified = None
    if month is not None:
        modified = _unix_time(month, int(match["day"]), match["time"], now)
    return Entry(match["name"], kind, int(match["size"]), modified)


def _unix_time(month: int, day: int, time_or_year: str, now: datetime) -> datetime | None:
    try:
        if ":" not in time_or_year:
            return datetime(int(time_or_year), month, day, tzinfo=UTC)
        hour, minute = (int(x) for x in time_or_year.split(":"))
        stamp = datetime(now.year, month, day, hour, minute, tzinfo=UTC)
    except ValueError:
        return None
    # 'ls' shows the time instead of the year for the last six months: a date "in the
    # future" belongs to last year.
    return stamp.replace(year=now.year - 1) if stamp > now else stamp


def _parse_dos_line(line: str) -> Entry | None:
    match = _DOS_LINE.match(line)
    if match is None:
        return None
    fmt = "%m-%d-%y %I:%M%p" if len(match["date"]) == 8 else "%m-%d-%Y %I:%M%p"
    try:
        modified: datetime | None = datetime.strptime(
            f"{match['date']} {match['time']}", fmt
        ).replace(tzinfo=UTC)
    except ValueError:
        modified = None
    if match["size"] == "<DIR>":
        return Entry(match["name"], "dir", 0, modified)
    return Entry(match["name"], "file", int(match["size"]), modified)
