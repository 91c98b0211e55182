"""The connector's scheduler: which source it syncs when, what it records, and the employee
directory it fills from a source that knows the tenant's workers.

Real parts: local folders, the SQLite index and queues, the Fernet secret store, the SQLite
employee directory. The HR system is a small in-test ``EmployeeFeed`` over a real folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.employees.sqlite import SqliteEmployeeDirectory
from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.adapters.queue.sqlite import SqliteQueue
from datatorag.adapters.secrets.fernet import FernetSecretStore
from datatorag.domain.employees import Employee
from datatorag.domain.errors import SourceError
from datatorag.domain.models import DocumentStatus, utcnow
from datatorag.usecases.sources import SourceCatalog
from datatorag_connector.scheduler import Scheduler
from datatorag_connector.sources import Source, open_source
from datatorag_connector.sources.local import LocalSource
from datatorag_connector.sync import Syncer

pytestmark = pytest.mark.unit

STAFF = [Employee(id="1", country="GB"), Employee(id="2", country="US", region="CA")]


class FolderWithStaff(LocalSource):
    """An in-test HR system: documents from a real folder, and a list of workers."""

    staff: list[Employee] = STAFF
    fail_staff = False

    def employees(self) -> Iterator[Employee]:
        if self.fail_staff:
            yield STAFF[0]
            raise SourceError("the workers report was malformed")
        yield from self.staff


@pytest.fixture
def parts(tmp_path: Path) -> dict[str, Any]:
    blobs = LocalBlobStore(tmp_path / "blobs")
    index = SqliteSearchIndex(tmp_path / "index")
    queues = tmp_path / "queues.db"
    syncer = Syncer(
        blobs,
        index,
        SqliteQueue(queues, "documents", max_receives=5, visibility_timeout=60),
        SqliteQueue(queues, "chunks", max_receives=5, visibility_timeout=60),
    )
    catalog = SourceCatalog(blobs, FernetSecretStore(blobs, Fernet.generate_key()))
    directory = SqliteEmployeeDirectory(tmp_path / "employees.db")
    folder = tmp_path / "hr"
    folder.mkdir()
    (folder / "leave.md").write_text("# Leave\nTwenty days.")
    return {
        "catalog": catalog,
        "syncer": syncer,
        "index": index,
        "directory": directory,
        "folder": folder,
    }


def scheduler(parts: dict[str, Any], opener: Any = open_source) -> Scheduler:
    return Scheduler(
        parts["catalog"],
        parts["syncer"],
        parts["index"],
        parts["directory"],
        interval_s=300,
        max_bytes=1 << 20,
        opener=opener,
    )


def hr_system(uri: str, *, max_bytes: int) -> Source:
    return FolderWithStaff(
        open_source(uri).display_uri.removeprefix("file://"), max_bytes=max_bytes
    )


def test_new_sources_sync_at_once_then_on_schedule_or_request(parts: dict[str, Any]) -> None:
    catalog: SourceCatalog = parts["catalog"]
    source = catalog.add("acme", parts["folder"].as_uri())
    run = scheduler(parts)
    assert run.poll() == 1  # never synced: due now
    assert run.poll() == 0  # next run in five minutes
    catalog.request_sync(source)
    assert run.poll() == 1
    view = catalog.view(source)
    assert [r.trigger for r in view.syncs] == ["request", "schedule"]
    assert view.next_sync_at is not None
    assert view.next_sync_at - view.syncs[0].started_at == timedelta(seconds=300)
    assert catalog.get("acme", source.id).documents_source_id is not None


def test_a_source_that_knows_the_workers_fills_the_directory(parts: dict[str, Any]) -> None:
    catalog: SourceCatalog = parts["catalog"]
    directory: SqliteEmployeeDirectory = parts["directory"]
    source = catalog.add("acme", parts["folder"].as_uri())
    directory.put("acme", Employee(id="gone", country="FR"))
    run = scheduler(parts, opener=hr_system)
    [synced] = [run.sync(source, "request")]
    assert (synced.status, synced.new, synced.employees) == ("succeeded", 1, 2)
    assert directory.get("acme", "2") == STAFF[1]
    assert directory.get("acme", "gone") is None  # left the company
    assert directory.get("globex", "1") is None


def test_a_broken_workers_feed_fails_the_sync_and_keeps_the_directory(
    parts: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog: SourceCatalog = parts["catalog"]
    directory: SqliteEmployeeDirectory = parts["directory"]
    source = catalog.add("acme", parts["folder"].as_uri())
    directory.replace_all("acme", STAFF)
    monkeypatch.setattr(FolderWithStaff, "fail_staff", True)
    run = scheduler(parts, opener=hr_system).sync(source, "schedule")
    assert run.status == "failed" and run.error == "the workers report was malformed"
    assert directory.get("acme", "2") == STAFF[1]


def test_a_source_deleted_while_it_syncs_leaves_nothing_behind(parts: dict[str, Any]) -> None:
    catalog: SourceCatalog = parts["catalog"]
    index: SqliteSearchIndex = parts["index"]
    source = catalog.add("acme", parts["folder"].as_uri())

    def deleted_meanwhile(uri: str, *, max_bytes: int) -> Source:
        opened = open_source(uri, max_bytes=max_bytes)
        catalog.delete(source, index)  # the API's DELETE, while the connector lists the folder
        return opened

    scheduler(parts, opener=deleted_meanwhile).sync(source, "schedule")
    assert [d.status for d in index.list_documents("acme")] == [DocumentStatus.DELETED]
    assert catalog.of_tenant("acme") == []
    assert catalog.history(source).runs == []  # no history recreated for a deleted source


def test_a_source_whose_credentials_cannot_be_read_is_recorded_as_failed(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    catalog: SourceCatalog = parts["catalog"]
    source = catalog.add("acme", "ftp://hr:pw@127.0.0.1:1/x")
    blobs = LocalBlobStore(tmp_path / "blobs")
    other_key = SourceCatalog(blobs, FernetSecretStore(blobs, Fernet.generate_key()))
    other = Scheduler(
        other_key,
        parts["syncer"],
        parts["index"],
        parts["directory"],
        interval_s=300,
        max_bytes=1 << 20,
    )
    run = other.sync(source, "schedule")
    assert run.status == "failed" and "DATATORAG_SECRETS_KEY" in (run.error or "")
    assert utcnow() - run.started_at < timedelta(minutes=1)


def test_a_source_synced_by_ingest_waits_for_its_next_run(parts: dict[str, Any]) -> None:
    """``datatorag ingest`` syncs in its own process; the connector must not sync it meanwhile."""
    catalog: SourceCatalog = parts["catalog"]
    source = catalog.add("acme", parts["folder"].as_uri())
    catalog.schedule(source, utcnow() + timedelta(minutes=5))
    run = scheduler(parts)
    assert run.poll() == 0
    catalog.schedule(source, utcnow() - timedelta(seconds=1))
    assert scheduler(parts).poll() == 1  # a connector (re)started now reads the history


def test_a_poll_reads_nothing_until_something_is_due(parts: dict[str, Any]) -> None:
    """Two listings per poll, however many sources: S3 bills every read."""
    catalog: SourceCatalog = parts["catalog"]
    for n in range(3):
        folder = parts["folder"].parent / f"hr{n}"
        folder.mkdir()
        catalog.add("acme", folder.as_uri())
    run = scheduler(parts)
    assert run.poll() == 3
    reads: list[str] = []
    blobs = catalog.blobs
    original = blobs.get

    def counted(key: str) -> bytes:
        reads.append(key)
        return original(key)

    blobs.get = counted  # type: ignore[method-assign]
    assert run.poll() == 0
    assert reads == []
    source = catalog.of_tenant("acme")[0]
    catalog.request_sync(source)
    reads.clear()
    assert run.poll() == 1
    assert all(source.id in key or "secrets" in key for key in reads), reads
