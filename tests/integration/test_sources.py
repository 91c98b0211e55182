"""Document sources against real servers: a local folder, pyftpdlib, and OpenSSH's sshd.

Each source serves the same tree (nested folders, Unicode names, a real corpus PDF, hidden and
unsupported files, names with control characters) and must list and read it the same way.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest

from datatorag.domain.errors import DocumentRejected, SourceError
from datatorag_connector.sources import (
    FileTooLarge,
    Source,
    SourceFile,
    UnsafePath,
    open_source,
    parse_location,
)
from datatorag_connector.sources.sftp import SftpSource
from tests.fixtures.file_servers import (
    FTP_PASSWORD,
    FTP_USER,
    FtpServer,
    SftpServer,
    ftp_uri,
    running_ftp_server,
)

pytestmark = pytest.mark.integration

CORPUS_PDF = "pdf/libreoffice/posthog/time-off.pdf"
PDF_PATH = "handbook/time-off.pdf"
SMALL_PATH = "notes.txt"
UNICODE_PATH = "Congés payés/politique d'absence.md"

# Present on disk but never listed: hidden, unsupported, or names no source may pass on.
NOT_LISTED = {
    ".hidden/secret.md": b"hidden folder",
    "handbook/.draft.md": b"hidden file",
    "..evil.md": b"dot-dot prefix",
    "image.png": b"\x89PNG not a document",
    "handbook/README": b"no extension",
    "back\\slash.md": b"backslash",
    "bell\x07.md": b"control character",
    "new\nline.md": b"newline",
    "rtl\u202eexe.md": b"bidirectional override",
}


def document_tree(corpus_dir: Path) -> dict[str, bytes]:
    return {
        PDF_PATH: (corpus_dir / CORPUS_PDF).read_bytes(),
        SMALL_PATH: b"Office hours: 9 to 5.\n",
        "handbook/policies/leave.md": b"# Leave\n\nTwenty days a year.\n",
        "handbook/policies/deep/nested/benefits.html": b"<h1>Benefits</h1><p>Dental.</p>",
        "handbook/policies/deep/nested/FAQ.HTM": b"<p>Upper-case extension.</p>",
        UNICODE_PATH: "Congés: 25 jours ouvrés.\n".encode(),
        "日本語/就業規則.markdown": "# 就業規則\n".encode(),
    }


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class Served(NamedTuple):
    kind: str
    uri: str
    root: Path
    options: dict[str, Any]  # credentials passed beside the URI
    files: dict[str, bytes]  # what list_files must return, with contents

    def open(self, **overrides: Any) -> Source:
        return open_source(self.uri, **{**self.options, **overrides})


@pytest.fixture(params=["local", "ftp", "sftp"])
def served(request: pytest.FixtureRequest, tmp_path: Path, corpus_dir: Path) -> Served:
    files = document_tree(corpus_dir)
    if request.param == "local":
        uri, root, options = str(tmp_path / "docs"), tmp_path / "docs", {}
        root.mkdir()
    elif request.param == "ftp":
        ftp: FtpServer = request.getfixturevalue("ftp_server")
        uri, root, options = ftp.uri, ftp.root, {}
    else:
        sftp: SftpServer = request.getfixturevalue("sftp_server")
        uri, root = sftp.uri, sftp.root
        options = {"key_file": sftp.key_file, "known_hosts": sftp.known_hosts}
    write_tree(root, {**files, **NOT_LISTED})
    return Served(request.param, uri, root, options, files)


@pytest.fixture
def source(served: Served) -> Iterator[Source]:
    with closing(served.open()) as opened:
        yield opened


# --- the same behaviour from every source


def test_lists_supported_documents_recursively_and_sorted(served: Served, source: Source) -> None:
    assert isinstance(source, Source)
    listed = source.list_files()
    assert [f.path for f in listed] == sorted(served.files)
    for file in listed:
        assert file.size == len(served.files[file.path])
        mtime = (served.root / file.path).stat().st_mtime
        assert file.modified is not None and file.modified.tzinfo is not None
        assert abs(file.modified.timestamp() - mtime) < 2


def test_reads_every_file_byte_for_byte(served: Served, source: Source) -> None:
    contents = {f.path: source.read(f) for f in source.list_files()}
    assert contents == served.files
    assert contents[PDF_PATH].startswith(b"%PDF-")


def test_uris_and_ids_carry_no_credentials(served: Served, source: Source) -> None:
    by_path = {f.path: f for f in source.list_files()}
    shown = [source.display_uri, repr(source)] + [source.uri_of(f) for f in by_path.values()]
    for text in shown:
        assert FTP_PASSWORD not in text and f"{FTP_USER}@" not in text and "@" not in text
    assert source.uri_of(by_path[UNICODE_PATH]) == (
        source.display_uri.rstrip("/") + "/Congés%20payés/politique%20d'absence.md"
    )
    assert source.source_id == parse_location(served.uri).source_id
    assert source.source_id.startswith("src_") and len(source.source_id) == 16
    expected_scheme = {"local": "file:///", "ftp": "ftp://127.0.0.1:", "sftp": "sftp://127.0.0.1:"}
    assert source.display_uri.startswith(expected_scheme[served.kind])


def test_max_size_is_enforced_before_and_while_reading(served: Served) -> None:
    pdf_size = len(served.files[PDF_PATH])
    with closing(served.open(max_bytes=pdf_size - 1)) as limited:
        by_path = {f.path: f for f in limited.list_files()}
        with pytest.raises(FileTooLarge, match=f"over the limit of {pdf_size - 1} bytes"):
            limited.read(by_path[PDF_PATH])
        # A listing that understates the size (the file grew) is caught while reading.
        understated = SourceFile(PDF_PATH, size=10, modified=None)
        with pytest.raises(FileTooLarge) as caught:
            limited.read(understated)
        assert isinstance(caught.value, DocumentRejected)  # a permanent, per-document failure
        assert limited.read(by_path[SMALL_PATH]) == served.files[SMALL_PATH]  # source still usable


@pytest.mark.parametrize("path", ["../outside.md", "/etc/passwd", "a/../../b.md", "a\\..\\b.md"])
def test_read_refuses_paths_that_leave_the_root(source: Source, path: str) -> None:
    file = SourceFile("notes.txt", size=1, modified=None)
    object.__setattr__(file, "path", path)  # get past SourceFile's own check
    with pytest.raises(UnsafePath):
        source.read(file)
    with pytest.raises(UnsafePath):
        SourceFile(path, size=1, modified=None)


def test_missing_file_is_a_source_error_without_credentials(source: Source) -> None:
    with pytest.raises(SourceError) as caught:
        source.read(SourceFile("handbook/gone.md", size=1, modified=None))
    assert "handbook/gone.md" in str(caught.value)
    assert FTP_PASSWORD not in str(caught.value)


# --- local folder


def test_local_symlinks_are_followed_only_inside_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write_tree(root, {"inside.md": b"inside"})
    (root / "passwd.txt").symlink_to("/etc/passwd")
    (root / "etc").symlink_to("/etc", target_is_directory=True)
    (root / "relative-escape.md").symlink_to("../outside.md")
    (tmp_path / "outside.md").write_bytes(b"outside")
    (root / "alias.md").symlink_to("inside.md")
    (root / "dangling.md").symlink_to("nowhere.md")
    with closing(open_source(root.as_uri())) as source:
        assert [f.path for f in source.list_files()] == ["alias.md", "inside.md"]
        for escaping in ("passwd.txt", "etc/passwd", "relative-escape.md"):
            with pytest.raises(UnsafePath, match="outside the source folder"):
                source.read(SourceFile(escaping, size=1, modified=None))
        assert source.read(SourceFile("alias.md", size=6, modified=None)) == b"inside"


def test_local_special_files_are_not_listed_nor_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.md")  # reading it would block forever
    with closing(open_source(str(tmp_path))) as source:
        assert source.list_files() == []
        with pytest.raises(SourceError, match="not a regular file"):
            source.read(SourceFile("pipe.md", size=0, modified=None))


def test_local_path_forms_name_the_same_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path)
    ids = {
        open_source(form).source_id
        for form in (
            "docs",
            str(tmp_path / "docs"),
            (tmp_path / "docs").as_uri(),
            f"file://localhost{tmp_path}/docs/",
        )
    }
    assert len(ids) == 1


def test_local_missing_folder_or_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="folder not found"):
        open_source(str(tmp_path / "missing"))
    (tmp_path / "file.md").write_text("x")
    with pytest.raises(SourceError, match="not a folder"):
        open_source(str(tmp_path / "file.md"))


# --- FTP


def test_ftp_wrong_password_is_refused_without_echoing_it(ftp_server: FtpServer) -> None:
    wrong = ftp_server.uri.replace(FTP_PASSWORD, "Wr0ng-Pa55")
    with pytest.raises(SourceError, match="FTP login refused") as caught:
        open_source(wrong)
    assert "Wr0ng-Pa55" not in str(caught.value) and FTP_PASSWORD not in str(caught.value)


def test_ftp_password_from_the_environment(ftp_server: FtpServer) -> None:
    without = ftp_server.uri.replace(f":{FTP_PASSWORD}", "")
    env = {"DATATORAG_FTP_PASSWORD": FTP_PASSWORD}
    with closing(open_source(without, environ=env)) as source:
        assert source.list_files() == []


def test_ftp_unreachable_server_and_missing_folder(ftp_server: FtpServer) -> None:
    port = urlsplit(ftp_server.uri).port
    assert port is not None
    with running_ftp_server(ftp_server.root) as closed_port:
        pass  # started and stopped: nothing listens there now
    with pytest.raises(SourceError, match="cannot connect") as caught:
        open_source(ftp_uri(closed_port), timeout=5)
    assert FTP_PASSWORD not in str(caught.value)
    missing = closing(open_source(ftp_uri(port, "/no/such/folder")))
    with missing as source, pytest.raises(SourceError, match="cannot list"):
        source.list_files()


def _recording_handler(base: type[Any], without: frozenset[str] = frozenset()) -> type[Any]:
    """A pyftpdlib handler that records every command and lacks the ``without`` commands."""
    commands: list[tuple[str, str]] = []

    def pre_process_command(self: Any, line: str, cmd: str, arg: str) -> None:
        commands.append((cmd, arg))
        base.pre_process_command(self, line, cmd, arg)

    proto = {k: v for k, v in base.proto_cmds.items() if k not in without}
    return type(
        "Recording",
        (base,),
        {"pre_process_command": pre_process_command, "proto_cmds": proto, "commands": commands},
    )


@pytest.mark.parametrize(
    ("without", "listing_command"),
    [
        (frozenset(), "MLSD"),
        (frozenset({"MLSD"}), "LIST"),
        (frozenset({"MLSD", "LIST"}), "NLST"),
    ],
    ids=["mlsd", "list-fallback", "nlst-fallback"],
)
def test_ftp_listing_falls_back_when_the_server_lacks_mlsd(
    tmp_path: Path, corpus_dir: Path, without: frozenset[str], listing_command: str
) -> None:
    from pyftpdlib.handlers import FTPHandler

    files = document_tree(corpus_dir)
    write_tree(tmp_path, {**files, **NOT_LISTED})
    handler = _recording_handler(FTPHandler, without)
    with (
        running_ftp_server(tmp_path, handler=handler) as port,
        closing(open_source(ftp_uri(port))) as source,
    ):
        listed = source.list_files()
        assert [(f.path, f.size) for f in listed] == sorted((p, len(d)) for p, d in files.items())
        assert all(f.modified is not None for f in listed)
        assert {f.path: source.read(f) for f in listed} == files
    sent = {cmd for cmd, _ in handler.commands}
    assert listing_command in sent


HOSTILE_NAMES = [
    "../escape.md",
    "../../../etc/passwd.txt",
    "/etc/passwd.md",
    "sub/../../up.md",
    "..\\..\\windows.md",
    "nul\x00byte.md",
    "tab\tname.md",
    "..",
    ".",
]


def test_ftp_hostile_listing_names_are_never_requested(tmp_path: Path) -> None:
    """A server that lists path-traversal names: they are skipped and never sent back."""
    from pyftpdlib.filesystems import AbstractedFS
    from pyftpdlib.handlers import FTPHandler

    root = tmp_path / "root"
    write_tree(root, {"safe.md": b"safe", "sub/also-safe.txt": b"also safe"})
    bait = tmp_path / "outside.md"
    bait.write_bytes(b"must never be read")

    class HostileFS(AbstractedFS):  # type: ignore[misc]
        def listdir(self, path: str) -> list[str]:
            return [*super().listdir(path), *HOSTILE_NAMES]

        def stat(self, path: str) -> os.stat_result:
            if any(path.endswith(name) for name in HOSTILE_NAMES):
                return os.stat(bait)  # listed as an ordinary file
            return super().stat(path)  # type: ignore[no-any-return]

    handler = _recording_handler(FTPHandler)
    with (
        running_ftp_server(root, handler=handler, filesystem=HostileFS) as port,
        closing(open_source(ftp_uri(port))) as source,
    ):
        listed = source.list_files()
        assert [f.path for f in listed] == ["safe.md", "sub/also-safe.txt"]
        assert [source.read(f) for f in listed] == [b"safe", b"also safe"]
    listing_lines = [arg for cmd, arg in handler.commands if cmd in {"MLSD", "RETR", "CWD", "SIZE"}]
    assert listing_lines == ["/", "/sub", "/safe.md", "/sub/also-safe.txt"]


def test_ftps_verifies_the_server_certificate(tmp_path: Path, corpus_dir: Path) -> None:
    pytest.importorskip("OpenSSL", reason="pyftpdlib's TLS handler needs pyOpenSSL")
    from pyftpdlib.handlers import TLS_FTPHandler

    cert = _self_signed_cert(tmp_path)
    files = document_tree(corpus_dir)
    write_tree(tmp_path / "root", files)
    # The server refuses plain-text logins and transfers: the client must protect both.
    strict = type(
        "StrictTLS", (TLS_FTPHandler,), {"tls_control_required": True, "tls_data_required": True}
    )
    with running_ftp_server(tmp_path / "root", handler=strict, certfile=cert) as port:
        uri = ftp_uri(port, scheme="ftps")
        with pytest.raises(SourceError, match="CERTIFICATE_VERIFY_FAILED"):
            open_source(uri, timeout=5)
        with closing(open_source(uri, ca_file=cert)) as source:
            assert source.display_uri == f"ftps://127.0.0.1:{port}/"
            listed = source.list_files()
            assert {f.path: source.read(f) for f in listed} == files


def _self_signed_cert(folder: Path) -> Path:
    """A certificate for 127.0.0.1 and its key, in one PEM file."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    path = folder / "cert.pem"
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


# --- SFTP


def test_sftp_unknown_host_key_is_refused_unless_trusted(
    sftp_server: SftpServer, tmp_path: Path
) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(SourceError, match="unknown SSH host key") as caught:
        open_source(sftp_server.uri, key_file=sftp_server.key_file, known_hosts=empty)
    assert "DATATORAG_SFTP_TRUST_UNKNOWN_HOSTS" in str(caught.value)
    trusted = open_source(
        sftp_server.uri,
        key_file=sftp_server.key_file,
        known_hosts=empty,
        environ={"DATATORAG_SFTP_TRUST_UNKNOWN_HOSTS": "1"},
    )
    with closing(trusted):
        assert trusted.list_files() == []
    assert empty.read_text() == ""  # trusting is for this session only: nothing written


def test_sftp_changed_host_key_is_refused_even_when_trusting(
    sftp_server: SftpServer, tmp_path: Path
) -> None:
    port = sftp_server.uri.split(":")[2].split("/")[0]
    other_key = Path(f"{sftp_server.key_file}.pub").read_text().split()  # a key, not the host's
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{port} {other_key[0]} {other_key[1]}\n")
    with pytest.raises(SourceError, match="does not match its known_hosts entry"):
        open_source(
            sftp_server.uri,
            key_file=sftp_server.key_file,
            known_hosts=wrong,
            trust_unknown_hosts=True,
        )


def test_sftp_wrong_credentials_are_refused_without_echoing_them(
    sftp_server: SftpServer, tmp_path: Path
) -> None:
    user = sftp_server.uri.split("//")[1].split("@")[0]
    with_password = sftp_server.uri.replace(f"//{user}@", f"//{user}:Wr0ng-Pa55@")
    with pytest.raises(SourceError, match="SSH login refused") as caught:
        open_source(with_password, known_hosts=sftp_server.known_hosts)
    assert "Wr0ng-Pa55" not in str(caught.value)

    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    with pytest.raises(SourceError, match="SSH login refused"):
        open_source(sftp_server.uri, key_file=stranger, known_hosts=sftp_server.known_hosts)
    with pytest.raises(SourceError, match="key file not found"):
        open_source(
            sftp_server.uri, key_file=tmp_path / "nope", known_hosts=sftp_server.known_hosts
        )


def test_sftp_credentials_from_the_environment(
    sftp_server: SftpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(sftp_server.root, {"a.md": b"a"})
    monkeypatch.setenv("DATATORAG_SFTP_KEY_FILE", str(sftp_server.key_file))
    monkeypatch.setenv("DATATORAG_SFTP_KNOWN_HOSTS", str(sftp_server.known_hosts))
    with closing(open_source(sftp_server.uri)) as source:
        assert [source.read(f) for f in source.list_files()] == [b"a"]


def test_sftp_symlinks_are_followed_only_inside_the_folder(
    sftp_server: SftpServer, tmp_path: Path
) -> None:
    root = sftp_server.root
    write_tree(root, {"inside.md": b"inside"})
    (root / "passwd.txt").symlink_to("/etc/passwd")
    (root / "etc").symlink_to("/etc", target_is_directory=True)
    (root / "alias.md").symlink_to("inside.md")
    (root / "dangling.md").symlink_to("nowhere.md")
    opened = open_source(
        sftp_server.uri, key_file=sftp_server.key_file, known_hosts=sftp_server.known_hosts
    )
    with closing(opened) as source:
        assert [f.path for f in source.list_files()] == ["alias.md", "inside.md"]
        for escaping in ("passwd.txt", "etc/passwd"):
            with pytest.raises(UnsafePath, match="outside the source folder"):
                source.read(SourceFile(escaping, size=1, modified=None))
        assert source.read(SourceFile("alias.md", size=6, modified=None)) == b"inside"


def test_sftp_missing_folder_is_refused(sftp_server: SftpServer) -> None:
    with pytest.raises(SourceError, match="folder not found"):
        open_source(
            sftp_server.uri + "/missing",
            key_file=sftp_server.key_file,
            known_hosts=sftp_server.known_hosts,
        )


def test_sftp_reconnects_after_the_server_drops_the_session(sftp_server: SftpServer) -> None:
    write_tree(sftp_server.root, {"a.md": b"a"})
    source = open_source(
        sftp_server.uri, key_file=sftp_server.key_file, known_hosts=sftp_server.known_hosts
    )
    assert isinstance(source, SftpSource)
    with closing(source):
        listed = source.list_files()
        transport = source._client.get_transport() if source._client else None
        assert transport is not None
        transport.close()  # as a server's idle timeout would
        assert source.read(listed[0]) == b"a"
