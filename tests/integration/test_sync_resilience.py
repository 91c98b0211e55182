"""Syncs that meet trouble keep what they cannot see, and the connector outlives a bad source.

Real parts: pyftpdlib and OpenSSH servers, local folders, the SQLite index and queues, the
real ``Worker``. Faults are injected where a real server cannot be made to fail on cue: a
pyftpdlib filesystem that refuses one folder, and an SSH connection closed mid-walk.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler
from structlog.testing import capture_logs

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.employees.sqlite import SqliteEmployeeDirectory
from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.adapters.queue.sqlite import SqliteQueue
from datatorag.adapters.secrets.fernet import FernetSecretStore
from datatorag.domain.errors import DocumentRejected, EmbeddingUnavailable
from datatorag.domain.messages import DocumentFetched, Message, decode
from datatorag.domain.models import DocumentStatus, utcnow
from datatorag.usecases.announce import REANNOUNCE_AFTER
from datatorag.usecases.sources import SourceCatalog
from datatorag.usecases.worker import Worker
from datatorag_connector.scheduler import Scheduler
from datatorag_connector.sources import Source, open_source
from datatorag_connector.sync import Syncer
from tests.fixtures.file_servers import FTP_PASSWORD, SftpServer, ftp_uri, running_ftp_server

pytestmark = pytest.mark.integration

TENANT = "acme"
MAX_RECEIVES = 3


@dataclass(frozen=True)
class Stack:
    syncer: Syncer
    index: SqliteSearchIndex
    documents: SqliteQueue
    chunks: SqliteQueue


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    index = SqliteSearchIndex(tmp_path / "index")
    queues = tmp_path / "queues.db"
    options: dict[str, Any] = {"max_receives": MAX_RECEIVES + 1, "visibility_timeout": 60}
    documents = SqliteQueue(queues, "documents", **options)
    chunks = SqliteQueue(queues, "chunks", **options)
    return Stack(
        Syncer(LocalBlobStore(tmp_path / "blobs"), index, documents, chunks),
        index,
        documents,
        chunks,
    )


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def sync(stack: Stack, open_it: Callable[[], Source]) -> Any:
    with closing(open_it()) as source:
        return stack.syncer.sync(source, TENANT)


# --- every type the processor reads is synced (domain/media.py, one table)


def test_every_readable_type_is_synced_with_its_media_type(tmp_path: Path, stack: Stack) -> None:
    root = tmp_path / "docs"
    write(
        root,
        {
            "leave.xhtml": "<html><body><p>Leave</p></body></html>",
            "notes.text": "Payday is the 25th.",
            "old.doc": "not read",
            "Handbook.MD": "# Handbook",
        },
    )
    report = sync(stack, lambda: open_source(str(root)))
    assert sorted(uri.rsplit("/", 1)[-1] for uri in report.added) == [
        "Handbook.MD",
        "leave.xhtml",
        "notes.text",
    ]
    announced = [decode(m.body) for m in stack.documents.receive(max_messages=10)]
    assert {m.filename: m.media_type for m in announced if isinstance(m, DocumentFetched)} == {
        "Handbook.MD": "text/markdown",
        "leave.xhtml": "text/html",
        "notes.text": "text/plain",
    }


# --- a folder that cannot be listed keeps its documents


class _Gate:
    closed = False  # while set, the "benefits" folder refuses to be listed


class _GatedFS(AbstractedFS):  # type: ignore[misc]
    def listdir(self, path: str) -> list[str]:
        if _Gate.closed and path.endswith("/benefits"):
            raise PermissionError(13, "Permission denied")
        return super().listdir(path)  # type: ignore[no-any-return]


@pytest.fixture
def gate() -> Iterator[type[_Gate]]:
    yield _Gate
    _Gate.closed = False


def test_ftp_unlistable_subfolder_keeps_its_documents(
    tmp_path: Path, stack: Stack, gate: type[_Gate]
) -> None:
    root = tmp_path / "ftp"
    write(root, {"handbook.md": "# Handbook", "old.md": "# Old", "benefits/dental.md": "# Dental"})
    with running_ftp_server(root, filesystem=_GatedFS) as port:
        first = sync(stack, lambda: open_source(ftp_uri(port)))
        assert len(first.added) == 3
        gate.closed = True
        (root / "old.md").unlink()
        write(root, {"new.md": "# New", "handbook.md": "# Handbook, revised"})
        report = sync(stack, lambda: open_source(ftp_uri(port)))
    base = f"ftp://127.0.0.1:{port}"
    # Files listed normally still sync; the refused folder's document is kept, not removed.
    assert report.added == [f"{base}/new.md"]
    assert report.changed == [f"{base}/handbook.md"]
    assert report.removed == [f"{base}/old.md"]
    assert list(report.unreadable) == [f"{base}/benefits"]
    assert "550" in report.unreadable[f"{base}/benefits"]
    assert FTP_PASSWORD not in str(report)
    removals = [decode(m.body).doc_id for m in stack.chunks.receive(max_messages=10)]
    dental = next(
        d for d in stack.index.list_documents(TENANT) if d.source_uri.endswith("dental.md")
    )
    assert dental.doc_id not in removals and len(removals) == 1
    assert dental.status == DocumentStatus.FETCHED


def test_local_unlistable_subfolder_keeps_its_documents(
    tmp_path: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "docs"
    write(root, {"handbook.md": "# Handbook", "benefits/dental.md": "# Dental"})
    sync(stack, lambda: open_source(str(root)))
    (root / "benefits").chmod(0)
    if os.geteuid() == 0:  # root lists any folder: refuse this one as the kernel would
        scandir = os.scandir

        def refusing(path: Any) -> Any:
            if os.fspath(path).endswith("/benefits"):
                raise PermissionError(13, "Permission denied")
            return scandir(path)

        monkeypatch.setattr(os, "scandir", refusing)
    try:
        report = sync(stack, lambda: open_source(str(root)))
    finally:
        (root / "benefits").chmod(0o755)
    assert report.removed == []
    assert report.unreadable == {f"{root.as_uri()}/benefits": "Permission denied"}
    assert stack.chunks.depth() == 0


def _sftp(server: SftpServer) -> Source:
    return open_source(server.uri, key_file=server.key_file, known_hosts=server.known_hosts)


def test_sftp_connection_lost_mid_walk_is_walked_again(
    sftp_server: SftpServer, stack: Stack
) -> None:
    files = {"handbook.md": "# H", "benefits/dental.md": "# D", "payroll/pay.md": "# P"}
    write(sftp_server.root, files)
    assert len(sync(stack, lambda: _sftp(sftp_server)).added) == 3
    with closing(_sftp(sftp_server)) as source:
        session = source._session()  # type: ignore[attr-defined]
        list_folder, calls = session.listdir_attr, []

        def drop_after_the_root(path: str) -> Any:
            calls.append(path)
            if len(calls) == 2:  # the network goes away right after the root was listed
                source._client.get_transport().close()  # type: ignore[attr-defined]
            return list_folder(path)

        session.listdir_attr = drop_after_the_root
        report = stack.syncer.sync(source, TENANT)
    assert report.removed == [] and report.unreadable == {}
    assert len(report.unchanged) == 3  # reconnected and listed everything
    assert stack.chunks.depth() == 0


def test_sftp_folder_with_a_name_that_is_not_utf8_keeps_its_documents(
    sftp_server: SftpServer, stack: Stack
) -> None:
    write(sftp_server.root, {"handbook.md": "# H", "legacy/leave.md": "# Leave"})
    sync(stack, lambda: _sftp(sftp_server))
    legacy = os.fsencode(sftp_server.root / "legacy")
    with open(os.path.join(legacy, b"Urlaub-\xdcbersicht.md"), "wb") as handle:
        handle.write(b"# Urlaub")
    report = sync(stack, lambda: _sftp(sftp_server))
    assert report.removed == [] and len(report.unchanged) == 1
    assert list(report.unreadable.values()) == ["a name in this folder is not UTF-8"]
    assert stack.chunks.depth() == 0


# --- FTP servers that send names in Latin-1


class _Latin1Handler(FTPHandler):  # type: ignore[misc]
    unicode_errors = "surrogateescape"  # names go out as their bytes on disk (Latin-1 here)


def test_ftp_latin1_names_are_listed_and_read_byte_for_byte(tmp_path: Path, stack: Stack) -> None:
    root = tmp_path / "ftp"
    write(root, {"handbook.md": "# Handbook"})
    (root / "Abwesenheit").mkdir()
    for folder, name in ((b"", b"Urlaub-\xdcbersicht.md"), (b"Abwesenheit", b"Kr\xe4nkung.md")):
        with open(os.path.join(os.fsencode(root), folder, name), "wb") as handle:
            handle.write(b"# " + name)
    with running_ftp_server(root, handler=_Latin1Handler) as port:
        with closing(open_source(ftp_uri(port))) as source:
            listed = source.list_files()
            contents = {f.path: source.read(f) for f in listed}
            shown = [source.uri_of(f) for f in listed]
        report = sync(stack, lambda: open_source(ftp_uri(port)))
        again = sync(stack, lambda: open_source(ftp_uri(port)))
    assert contents == {
        "Abwesenheit/Kränkung.md": b"# Kr\xe4nkung.md",
        "Urlaub-Übersicht.md": b"# Urlaub-\xdcbersicht.md",
        "handbook.md": b"# Handbook",
    }
    assert f"ftp://127.0.0.1:{port}/Urlaub-Übersicht.md" in shown
    assert len(report.added) == 3 and report.unreadable == {}
    assert len(again.unchanged) == 3  # the same URIs from one sync to the next


# --- one failing source does not stop the others


def test_a_source_that_crashes_its_sync_does_not_stop_the_round(tmp_path: Path) -> None:
    data = tmp_path / "data"
    blobs = LocalBlobStore(data / "blobs")
    index = SqliteSearchIndex(data / "index")
    queues = data / "queues.db"
    documents = SqliteQueue(queues, "documents", max_receives=5, visibility_timeout=60)
    syncer = Syncer(
        blobs,
        index,
        documents,
        SqliteQueue(queues, "chunks", max_receives=5, visibility_timeout=60),
    )
    catalog = SourceCatalog(blobs, FernetSecretStore(blobs, Fernet.generate_key()))
    scheduler = Scheduler(
        catalog,
        syncer,
        index,
        SqliteEmployeeDirectory(data / "employees.db"),
        interval_s=300,
        max_bytes=1 << 20,
    )
    ftp_root, good = tmp_path / "ftp", tmp_path / "good"
    write(ftp_root, {"a.md": "# A"})
    write(good, {"leave.md": "# Leave"})
    # Tenant "aaa" is synced first, and its index is damaged: sqlite3.DatabaseError, no SourceError.
    (data / "index" / "aaa.db").write_bytes(b"this is not a database" * 100)
    with running_ftp_server(ftp_root) as port:
        catalog.add("aaa", ftp_uri(port))
        catalog.add("zzz", good.as_uri())
        with capture_logs() as logs:
            assert scheduler.poll() == 2
    assert [d.source_uri.rsplit("/", 1)[-1] for d in index.list_documents("zzz")] == ["leave.md"]
    crashed = [e for e in logs if e["event"] == "source.sync_crashed"]
    assert len(crashed) == 1 and crashed[0]["tenant"] == "aaa"
    assert crashed[0]["source_id"].startswith("src_")
    assert crashed[0]["error"].startswith("DatabaseError")
    assert FTP_PASSWORD not in str(logs)
    [failed] = catalog.view(catalog.of_tenant("aaa")[0]).syncs  # recorded for the API too
    assert failed.status == "failed" and failed.error.startswith("DatabaseError")  # type: ignore[union-attr]
    assert FTP_PASSWORD not in failed.model_dump_json()
    [done] = catalog.view(catalog.of_tenant("zzz")[0]).syncs
    assert (done.status, done.new, done.scanned) == ("succeeded", 1, 1)


# --- a document that failed on an outage heals; one that failed on itself stays failed


def _fail_every_attempt(stack: Stack, error: Exception) -> None:
    """Run the real worker over the documents queue with a handler that always raises."""

    def handle(message: Message) -> None:
        raise error

    def record_failure(message: Message, reason: str) -> None:
        assert isinstance(message, DocumentFetched)
        stack.index.set_status(
            message.tenant,
            message.doc_id,
            DocumentStatus.FAILED,
            version=message.version,
            reason=reason,
        )

    worker = Worker(
        stack.documents, handle, record_failure, max_receives=MAX_RECEIVES, retry_delay_s=0
    )
    while received := stack.documents.receive(max_messages=1):
        worker.process(received[0])


def _age(stack: Stack) -> None:
    """Let REANNOUNCE_AFTER pass since the failure."""
    for doc in stack.index.list_documents(TENANT):
        stack.index.upsert_document(
            doc.model_copy(
                update={"updated_at": utcnow() - REANNOUNCE_AFTER - timedelta(minutes=1)}
            )
        )


def test_a_document_that_failed_on_an_outage_is_announced_again(
    tmp_path: Path, stack: Stack
) -> None:
    root = tmp_path / "docs"
    write(root, {"leave.md": "# Leave\n\nThirty days."})
    sync(stack, lambda: open_source(str(root)))
    _fail_every_attempt(stack, EmbeddingUnavailable("embedding endpoint unreachable"))
    [failed] = stack.index.list_documents(TENANT)
    assert failed.status == DocumentStatus.FAILED
    assert failed.reason == f"gave up after {MAX_RECEIVES} attempts: embedding endpoint unreachable"
    # Straight after the failure the document waits; once the delay has passed it goes again.
    assert sync(stack, lambda: open_source(str(root))).unchanged == [failed.source_uri]
    assert stack.documents.depth() == 0
    _age(stack)
    report = sync(stack, lambda: open_source(str(root)))
    assert report.changed == [failed.source_uri]
    assert stack.documents.depth() == 1
    [again] = stack.index.list_documents(TENANT)
    assert again.status == DocumentStatus.FETCHED and again.version == failed.version


def test_a_document_rejected_for_itself_is_not_announced_again(
    tmp_path: Path, stack: Stack
) -> None:
    root = tmp_path / "docs"
    write(root, {"secret.md": "# Locked"})
    sync(stack, lambda: open_source(str(root)))
    _fail_every_attempt(stack, DocumentRejected("the PDF is encrypted: remove the password"))
    _age(stack)
    report = sync(stack, lambda: open_source(str(root)))
    [doc] = stack.index.list_documents(TENANT)
    assert doc.status == DocumentStatus.FAILED and report.unchanged == [doc.source_uri]
    assert stack.documents.depth() == 0


def test_a_document_that_crashed_the_worker_every_time_is_not_announced_again(
    tmp_path: Path, stack: Stack
) -> None:
    root = tmp_path / "docs"
    write(root, {"bomb.md": "# Bomb"})
    sync(stack, lambda: open_source(str(root)))
    for _ in range(MAX_RECEIVES):  # the worker died holding it: it comes back after its timeout
        [received] = stack.documents.receive(max_messages=1)
        stack.documents.change_visibility(received.receipt, 0)
    _fail_every_attempt(stack, AssertionError("never reached"))
    [doc] = stack.index.list_documents(TENANT)
    assert doc.reason == f"gave up after {MAX_RECEIVES} attempts"
    _age(stack)
    assert sync(stack, lambda: open_source(str(root))).unchanged == [doc.source_uri]
    assert stack.documents.depth() == 0


def test_a_document_whose_message_was_lost_is_announced_again_by_a_new_syncer(
    tmp_path: Path, stack: Stack
) -> None:
    """A connector killed between a document's record and its message left it `fetched`, with
    no message, for REANNOUNCE_AFTER (10 minutes); found by tests/integration/test_faults.py."""
    root = tmp_path / "docs"
    write(root, {"leave.md": "# Leave\n\nThirty days."})
    sync(stack, lambda: open_source(str(root)))
    [lost] = stack.documents.receive(max_messages=1)
    stack.documents.delete(lost.receipt)  # the message never made it; the record did
    [doc] = stack.index.list_documents(TENANT)
    assert doc.status == DocumentStatus.FETCHED
    # The syncer that announced it knows it did: no duplicate while its message waits.
    assert sync(stack, lambda: open_source(str(root))).unchanged == [doc.source_uri]
    assert stack.documents.depth() == 0
    # A new process (the connector started again) announces it once more, at once.
    old = stack.syncer
    restarted = replace(
        stack, syncer=Syncer(old.blobs, old.index, old.documents_queue, old.chunks_queue)
    )
    assert sync(restarted, lambda: open_source(str(root))).changed == [doc.source_uri]
    assert stack.documents.depth() == 1
    assert sync(restarted, lambda: open_source(str(root))).unchanged == [doc.source_uri]
    assert stack.documents.depth() == 1
