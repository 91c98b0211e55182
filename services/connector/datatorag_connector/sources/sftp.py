"""A folder on an SSH server (``sftp://user@host:port/dir``), through paramiko.

Host keys are verified: against the known_hosts file named by ``DATATORAG_SFTP_KNOWN_HOSTS``
(or passed in), else against ``~/.ssh/known_hosts``. An unknown host is refused unless
``DATATORAG_SFTP_TRUST_UNKNOWN_HOSTS=1``; a host whose key changed is always refused.
Links are followed only when the server resolves them to a file inside the root.
"""

from __future__ import annotations

import posixpath
import stat
from datetime import UTC, datetime
from pathlib import Path

import paramiko

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
    display_netloc,
    is_hidden,
    is_safe_name,
    join_relative,
    scrub,
)

log = get_logger(__name__)


class _UnknownHost(paramiko.SSHException):
    def __init__(self, host: str, key: paramiko.PKey) -> None:
        super().__init__(f"{key.get_name()} {key.fingerprint}")
        self.host = host


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise _UnknownHost(hostname, key)


class _TrustUnknownHost(paramiko.MissingHostKeyPolicy):
    """Accept for this session only (nothing is written); say so, with the fingerprint."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        log.warning(
            "source.sftp_unknown_host_trusted",
            host=hostname,
            key=f"{key.get_name()} {key.fingerprint}",
        )


class _ConnectionLost(Exception):
    """Internal: the SSH connection broke mid-walk; reconnect and walk again once."""


class SftpSource(BaseSource):
    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str,
        password: str | None,
        key_file: str | None,
        known_hosts: str | None,
        trust_unknown_hosts: bool,
        root: str,
        max_bytes: int,
        timeout: float,
    ) -> None:
        super().__init__(f"sftp://{display_netloc(host, port)}{quote_path(root)}", max_bytes)
        self._host, self._port, self._user, self._password = host, port, user, password
        self._key_file, self._known_hosts = key_file, known_hosts
        self._trust, self._root_spec, self._timeout = trust_unknown_hosts, root, timeout
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._base = ""  # the root's real path on the server, set on connect
        self._connect()

    # --- public API

    def listing(self) -> Listing:
        for attempt in (1, 2):
            found = Listing()
            try:
                self._walk(self._session(), "", 0, found)
            except _ConnectionLost as lost:
                if attempt == 2:
                    raise SourceError(f"connection to {self.display_uri} lost: {lost}") from None
                continue
            found.files.sort(key=lambda f: f.path)
            return found
        raise AssertionError("unreachable")

    def read(self, file: SourceFile) -> bytes:
        remote = posixpath.join(self._base, check_relative_path(file.path))
        self._check_size(file, file.size)
        sftp = self._session()
        try:
            real = sftp.normalize(remote)  # the server resolves links; the result must stay inside
            if not self._inside(real):
                raise UnsafePath(f"{self.uri_of(file)} leads outside the source folder")
            with sftp.open(real, "rb") as handle:
                info = handle.stat()
                if not stat.S_ISREG(info.st_mode or 0):
                    raise SourceError(f"{self.uri_of(file)} is not a regular file")
                self._check_size(file, info.st_size or 0)
                handle.prefetch(
                    info.st_size
                )  # pipelined reads: one round trip per file, not per block
                data = handle.read(self.max_bytes + 1)
        except (OSError, EOFError, paramiko.SSHException) as err:
            raise SourceError(f"cannot read {self.uri_of(file)}: {self._clean(err)}") from err
        self._check_size(file, len(data))
        return data

    def close(self) -> None:
        sftp, client = self._sftp, self._client
        self._sftp = self._client = None
        if sftp is not None:
            sftp.close()
        if client is not None:
            client.close()

    # --- connection

    def _connect(self) -> paramiko.SFTPClient:
        self.close()
        client = paramiko.SSHClient()
        try:
            self._load_host_keys(client)
            client.set_missing_host_key_policy(
                _TrustUnknownHost() if self._trust else _RefuseUnknownHost()
            )
            self._login(client)
            sftp = client.open_sftp()
            self._base = self._resolve_root(sftp)
        except BaseException:
            client.close()
            raise
        self._client, self._sftp = client, sftp
        return sftp

    def _load_host_keys(self, client: paramiko.SSHClient) -> None:
        if self._known_hosts is None:
            client.load_system_host_keys()  # ~/.ssh/known_hosts, if there is one
            return
        try:
            client.load_host_keys(self._known_hosts)
        except OSError as err:
            raise SourceError(
                f"cannot read the known_hosts file {self._known_hosts!r}: {err.strerror}"
            ) from err

    def _login(self, client: paramiko.SSHClient) -> None:
        if self._key_file is not None and not Path(self._key_file).is_file():
            raise SourceError(f"SSH key file not found: {self._key_file!r}")
        explicit = self._password is not None or self._key_file is not None
        where = f"{self.display_uri} as {self._user!r}"
        try:
            client.connect(
                self._host,
                port=self._port,
                username=self._user,
                password=self._password,
                key_filename=self._key_file,
                look_for_keys=not explicit,  # given credentials: use only those
                allow_agent=not explicit,
                timeout=self._timeout,
                banner_timeout=self._timeout,
                auth_timeout=self._timeout,
            )
        except _UnknownHost as err:
            raise SourceError(
                f"unknown SSH host key for {err.host} ({err}): add it to the known_hosts file "
                "named by DATATORAG_SFTP_KNOWN_HOSTS (ssh-keyscan -p PORT HOST), or set "
                "DATATORAG_SFTP_TRUST_UNKNOWN_HOSTS=1 to accept it"
            ) from None
        except paramiko.BadHostKeyException:
            raise SourceError(
                f"the SSH host key of {self.display_uri} does not match its known_hosts entry: "
                "refusing to connect (the key changed, or someone is intercepting the connection)"
            ) from None
        except paramiko.AuthenticationException as err:
            raise SourceError(f"SSH login refused at {where}: {self._clean(err)}") from None
        except (OSError, EOFError, paramiko.SSHException) as err:
            raise SourceError(f"cannot connect to {where}: {self._clean(err)}") from None

    def _resolve_root(self, sftp: paramiko.SFTPClient) -> str:
        """The root's real path ('/~' means the login folder); it must be a folder."""
        parts = self._root_spec.strip("/").split("/")
        path = posixpath.join(".", *parts[1:]) if parts[0] == "~" else "/" + "/".join(parts)
        try:
            real = sftp.normalize(path)
            mode = sftp.stat(real).st_mode or 0
        except OSError as err:
            raise SourceError(
                f"folder not found: {self.display_uri} ({self._clean(err)})"
            ) from None
        if not stat.S_ISDIR(mode):
            raise SourceError(f"not a folder: {self.display_uri}")
        return real

    def _session(self) -> paramiko.SFTPClient:
        """The SFTP session, reconnecting if the server closed it while idle."""
        if self._sftp is None or not self._connected():
            return self._connect()
        return self._sftp

    def _connected(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    def _clean(self, err: BaseException) -> str:
        return scrub(str(err) or type(err).__name__, self._password)

    def _inside(self, real: str) -> bool:
        return real.startswith(self._base.rstrip("/") + "/")

    # --- listing

    def _walk(self, sftp: paramiko.SFTPClient, rel: str, depth: int, out: Listing) -> None:
        if depth > MAX_DEPTH:
            log.warning("source.too_deep", source=self.display_uri, folder=rel)
            return
        folder = posixpath.join(self._base, rel) if rel else self._base
        try:
            entries = sftp.listdir_attr(folder)
        except UnicodeDecodeError:  # paramiko decodes names as strict UTF-8
            self._unlisted(out, rel, "a name in this folder is not UTF-8")
            return
        except (OSError, EOFError, paramiko.SSHException, paramiko.SFTPError) as err:
            if not self._connected():  # the connection, not the folder: every later one fails
                raise _ConnectionLost(self._clean(err)) from None
            self._unlisted(out, rel, self._clean(err))
            return
        for entry in sorted(entries, key=lambda e: e.filename):
            name = entry.filename
            if is_hidden(name):
                continue
            if not is_safe_name(name):
                log.warning("source.unsafe_name", source=self.display_uri, name=repr(name))
                continue
            child = join_relative(rel, name)
            mode = entry.st_mode or 0
            if stat.S_ISDIR(
                mode
            ):  # listing attributes are lstat's: links to folders are not followed
                self._walk(sftp, child, depth + 1, out)
            elif is_supported(name) and (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                found = self._file(sftp, child, entry, linked=stat.S_ISLNK(mode))
                if found is not None:
                    out.files.append(found)

    def _file(
        self, sftp: paramiko.SFTPClient, rel: str, entry: paramiko.SFTPAttributes, *, linked: bool
    ) -> SourceFile | None:
        if linked:
            try:
                remote = posixpath.join(self._base, rel)
                inside = self._inside(sftp.normalize(remote))
                entry = sftp.stat(remote)
            except OSError as err:  # dangling link, unless the connection broke
                if not self._connected():
                    raise _ConnectionLost(self._clean(err)) from None
                return None
            if not inside or not stat.S_ISREG(entry.st_mode or 0):
                log.warning("source.link_outside_root", source=self.display_uri, path=rel)
                return None
        modified = datetime.fromtimestamp(entry.st_mtime, tz=UTC) if entry.st_mtime else None
        return SourceFile(path=rel, size=entry.st_size or 0, modified=modified)
