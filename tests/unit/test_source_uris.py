"""Source URIs, what is shown of them, path checks and FTP listing parsing (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from datatorag.domain.errors import SourceError
from datatorag.domain.media import is_supported
from datatorag.domain.uris import quote_path
from datatorag_connector.sources import Location, open_source, parse_location, redact_uri
from datatorag_connector.sources.base import (
    UnsafePath,
    check_relative_path,
    is_safe_name,
)
from datatorag_connector.sources.ftp import Entry, _parse_list, _parse_mlsx_time

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "ftp://bob:pw@files.example.com/hr",
            Location("ftp", "/hr", "files.example.com", 21, "bob"),
        ),
        ("FTPS://Files.Example.com:2121", Location("ftps", "/", "files.example.com", 2121)),
        ("sftp://alice@10.0.0.5/drop/", Location("sftp", "/drop", "10.0.0.5", 22, "alice")),
        ("sftp://[::1]:2222/~/docs", Location("sftp", "/~/docs", "::1", 2222)),
        ("sftp://h/a/../b//c", Location("sftp", "/b/c", "h", 22)),
        ("file:///srv/hr%20docs", Location("file", "/srv/hr docs")),
        ("file://localhost/srv/hr", Location("file", "/srv/hr")),
        ("/srv/hr/", Location("file", "/srv/hr")),
    ],
)
def test_parse_location(uri: str, expected: Location) -> None:
    got = parse_location(uri)
    assert (got.scheme, got.path, got.host, got.port) == (
        expected.scheme,
        expected.path,
        expected.host,
        expected.port,
    )
    if expected.user:
        assert got.user == expected.user


def test_user_and_password_are_decoded_but_never_shown() -> None:
    where = parse_location("sftp://hr%40corp:p%3Ass%2Fw0rd@host:2200/drop")
    assert (where.user, where.password) == ("hr@corp", "p:ss/w0rd")
    assert where.display_uri == "sftp://host:2200/drop"
    assert "p:ss/w0rd" not in repr(where) and "p%3Ass" not in repr(where)


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("ftp://u:pw@h/x", "ftp://h:21/x"),
        ("ftp://h/", "ftp://h:21/"),
        ("sftp://[::1]:2222/a b#c", "sftp://[::1]:2222/a%20b"),
        ("sftp://h/dossier/Congés", "sftp://h:22/dossier/Congés"),
        ("/tmp/a%b?c", "file:///tmp/a%25b%3Fc"),
    ],
)
def test_display_uri_is_canonical_and_credential_free(uri: str, shown: str) -> None:
    assert parse_location(uri).display_uri == shown


def test_source_id_does_not_depend_on_credentials_or_spelling() -> None:
    ids = {
        parse_location(uri).source_id
        for uri in ("ftp://bob:one@Files.example.com/hr/", "ftp://eve:two@files.example.com:21/hr")
    }
    assert len(ids) == 1
    (only,) = ids
    assert only.startswith("src_") and len(only) == 16
    assert parse_location("ftp://files.example.com/other").source_id != only
    assert parse_location("sftp://files.example.com/hr").source_id != only


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://AKIDEXAMPLE:hunter2@bucket/hr", "credentials come from AWS"),
        ("http://user:hunter2@intranet/hr", "unsupported source scheme 'http'"),
        ("bamboohr://hunter2@/x", "no company or host"),
        ("bamboohr://hunter2@acme?api_base=ftp://h", "api_base must be an http"),
        ("workday://id:hunter2@host?refresh_token=hunter2", "tenant"),
        ("adp://id:hunter2@acme", "cert_file"),
        ("ftp://user:hunter2@host:99999/hr", "invalid source URI"),
        ("ftp://user:hunter2@/hr", "no host"),
        ("file://fileserver/hr?token=hunter2", "must name a local folder"),
        ("   ", "empty source"),
    ],
)
def test_bad_uris_are_refused_without_echoing_secrets(uri: str, message: str) -> None:
    with pytest.raises(SourceError, match=message) as caught:
        open_source(uri)
    assert "hunter2" not in str(caught.value)


def test_redact_uri_drops_userinfo_and_secret_query_values() -> None:
    shown = redact_uri("https://bob:hunter2@h:8443/p?api_key=k1&page=2&X-Amz-Signature=s1#frag")
    assert shown == "https://h:8443/p?api_key=REDACTED&page=2&X-Amz-Signature=REDACTED"


# --- names and paths from servers


@pytest.mark.parametrize(
    "name",
    ["leave.pdf", "Congés payés.md", "就業規則.md", "a..b.pdf", "..evil", "-rf.md", "x y.txt"],
)
def test_safe_names(name: str) -> None:
    assert is_safe_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "a/b.md",
        "/etc",
        "..\\win.md",
        "nul\x00.md",
        "new\nline.md",
        "cr\r.md",
        "del\x7f.md",
        "c1\x85.md",
        "rtl\u202efdp.exe",
        "bad\udcff.md",  # an undecodable byte, as os.listdir surrogate-escapes it
    ],
)
def test_unsafe_names(name: str) -> None:
    assert not is_safe_name(name)


@pytest.mark.parametrize(
    "path", ["", "/abs.md", "a/../b.md", "../b.md", "a//b.md", "a/./b.md", "a\\b"]
)
def test_check_relative_path_refuses_escapes(path: str) -> None:
    with pytest.raises(UnsafePath):
        check_relative_path(path)


def test_check_relative_path_accepts_nested_unicode() -> None:
    assert check_relative_path("RH/Congés/2024 policy.pdf") == "RH/Congés/2024 policy.pdf"


@pytest.mark.parametrize(
    ("name", "supported"),
    [
        ("a.PDF", True),
        ("a.docx", True),
        ("a.htm", True),
        ("a.xhtml", True),  # the processor reads these; the connector once skipped them
        ("a.markdown", True),
        ("a.text", True),
        ("a.doc", False),
        ("pdf", False),
    ],
)
def test_supported_extensions(name: str, supported: bool) -> None:
    assert is_supported(name) is supported


def test_quote_path_keeps_unicode_and_encodes_uri_delimiters() -> None:
    assert quote_path("/RH/Congés 2024/#1?.pdf") == "/RH/Congés%202024/%231%3F.pdf"


# --- FTP listing formats (lines as real servers send them)

NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)


def test_unix_list_lines() -> None:
    lines = [
        "total 24",
        "-rw-r--r--   1 hr       staff       52311 Mar 01 09:30 Leave policy.pdf",
        "drwxr-xr-x   2 hr       staff        4096 Jan 05  2023 archive",
        "lrwxrwxrwx   1 hr       staff          11 Mar 02 10:00 passwd.txt -> /etc/passwd",
        "-rw-r--r--+  1 hr staff 10 Dec 24 18:00 from-last-year.md",
        "-rw-r--r--   1 1000     1000          7 Feb 29 23:59  leading space.md",
        "garbage line",
    ]
    assert _parse_list(lines, now=NOW) == [
        Entry("Leave policy.pdf", "file", 52311, datetime(2024, 3, 1, 9, 30, tzinfo=UTC)),
        Entry("archive", "dir", 4096, datetime(2023, 1, 5, tzinfo=UTC)),
        Entry("passwd.txt -> /etc/passwd", "other", 11, datetime(2024, 3, 2, 10, 0, tzinfo=UTC)),
        Entry("from-last-year.md", "file", 10, datetime(2023, 12, 24, 18, 0, tzinfo=UTC)),
        Entry(" leading space.md", "file", 7, datetime(2024, 2, 29, 23, 59, tzinfo=UTC)),
    ]


def test_unix_list_line_without_group_column() -> None:
    (entry,) = _parse_list(["-rw-r--r-- 1 ftp 1234 Mar 01 09:30 a.pdf"], now=NOW)
    assert (entry.name, entry.size) == ("a.pdf", 1234)


def test_ms_dos_list_lines() -> None:
    lines = [
        "03-01-24  09:30AM                52311 Leave policy.pdf",
        "01-05-2023  02:15PM       <DIR>          archive",
    ]
    assert _parse_list(lines, now=NOW) == [
        Entry("Leave policy.pdf", "file", 52311, datetime(2024, 3, 1, 9, 30, tzinfo=UTC)),
        Entry("archive", "dir", 0, datetime(2023, 1, 5, 14, 15, tzinfo=UTC)),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240301093005", datetime(2024, 3, 1, 9, 30, 5, tzinfo=UTC)),
        ("20240301093005.123", datetime(2024, 3, 1, 9, 30, 5, tzinfo=UTC)),
        ("", None),
        ("not-a-time", None),
    ],
)
def test_mlsx_time(value: str, expected: datetime | None) -> None:
    assert _parse_mlsx_time(value) == expected
