"""The BambooHR source against the named fake of BambooHR's API (tests/fixtures/hr_servers.py).

Real HTTP on loopback, the real syncer on the embedded adapters: a sync indexes the files shared
with employees (categories as tags), notices changed bytes and changed categories, prunes files
deleted or unshared, waits out throttling, and a malformed answer fails the sync with nothing
removed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from structlog.testing import capture_logs

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.employees.sqlite import SqliteEmployeeDirectory
from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.adapters.queue.sqlite import SqliteQueue
from datatorag.adapters.secrets.fernet import FernetSecretStore
from datatorag.domain.employees import Employee
from datatorag.domain.errors import SourceError
from datatorag.domain.messages import DocumentFetched, DocumentRemoved, decode
from datatorag.ports import EmployeeFeed
from datatorag.usecases.sources import SourceCatalog
from datatorag_connector.scheduler import Scheduler
from datatorag_connector.sources import FileTooLarge, open_source
from datatorag_connector.sources.bamboohr import BambooHRSource
from datatorag_connector.sync import Syncer, SyncReport
from tests.fixtures.hr_servers import FakeBambooHR

pytestmark = pytest.mark.integration

TENANT = "acme"


@dataclass
class Pipeline:
    syncer: Syncer
    index: SqliteSearchIndex
    documents: SqliteQueue
    chunks: SqliteQueue

    def announced(self) -> list[DocumentFetched]:
        return [m for m in _drain(self.documents) if isinstance(m, DocumentFetched)]

    def removed(self) -> list[str]:
        return [m.doc_id for m in _drain(self.chunks) if isinstance(m, DocumentRemoved)]


def _drain(queue: SqliteQueue) -> list[Any]:
    found = []
    while batch := queue.receive(max_messages=10):
        for message in batch:
            found.append(decode(message.body))
            queue.delete(message.receipt)
    return found


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    index = SqliteSearchIndex(tmp_path / "index")
    options: dict[str, Any] = {"max_receives": 3, "visibility_timeout": 60}
    documents = SqliteQueue(tmp_path / "q.db", "documents", **options)
    chunks = SqliteQueue(tmp_path / "q.db", "chunks", **options)
    return Pipeline(
        Syncer(LocalBlobStore(tmp_path / "blobs"), index, documents, chunks),
        index,
        documents,
        chunks,
    )


@pytest.fixture
def bamboo(fake_bamboohr: FakeBambooHR) -> Iterator[FakeBambooHR]:
    fake_bamboohr.add_file("Benefits", "UK Pension", "pension.md", b"# Pension\nRoyal London.")
    fake_bamboohr.add_file("Handbook", "Leave policy", "leave.md", b"# Leave\n25 days.")
    fake_bamboohr.add_file("Handbook", "Draft", "draft.md", b"# Draft\nnot yet", shared=False)
    fake_bamboohr.add_file("Handbook", "Logo", "logo.png", b"\x89PNG")
    yield fake_bamboohr


def uri(fake: FakeBambooHR, key: str | None = None, extra: str = "") -> str:
    return f"bamboohr://{key or fake.api_key}@acme?api_base={fake.url}{extra}"


def sync(pipeline: Pipeline, source_uri: str) -> SyncReport:
    with closing(open_source(source_uri)) as source:
        return pipeline.syncer.sync(source, TENANT)


def test_shared_files_are_listed_with_their_category_as_a_tag(
    pipeline: Pipeline, bamboo: FakeBambooHR
) -> None:
    report = sync(pipeline, uri(bamboo))
    assert sorted(u.rsplit("/", 1)[1] for u in report.added) == ["leave.md", "pension.md"]
    assert all(u.startswith("bamboohr://acme/") for u in report.added)
    announced = {m.filename: m for m in pipeline.announced()}
    assert announced["pension.md"].metadata["tags"] == ["Benefits"]
    assert announced["pension.md"].metadata["title"] == "UK Pension"
    record = pipeline.index.get_document(TENANT, announced["leave.md"].doc_id)
    assert record is not None and record.title == "Leave policy"
    assert record.metadata["tags"] == ["Handbook"]
    listing = bamboo.api_requests("/api/v1/files/view")[0]
    assert listing.headers["accept"] == "application/json"


def test_unshared_files_are_indexed_only_when_the_source_says_so(
    pipeline: Pipeline, bamboo: FakeBambooHR
) -> None:
    report = sync(pipeline, uri(bamboo, extra="&shared_only=no"))
    assert sorted(u.rsplit("/", 1)[1] for u in report.added) == [
        "draft.md",
        "leave.md",
        "pension.md",
    ]


def test_changed_bytes_and_changed_category_are_announced_again(
    pipeline: Pipeline, bamboo: FakeBambooHR
) -> None:
    sync(pipeline, uri(bamboo))
    pipeline.announced()
    pension, leave = bamboo.files[101], bamboo.files[102]
    pension.data = b"# Pension\nRoyal London, 5% from the company."
    bamboo.categories[3] = "Policies"
    leave.category_id = 3
    report = sync(pipeline, uri(bamboo))
    assert len(report.changed) == 2 and not report.added and not report.removed
    announced = {m.filename: m for m in pipeline.announced()}
    assert announced["leave.md"].metadata["tags"] == ["Policies"]
    again = sync(pipeline, uri(bamboo))
    assert len(again.unchanged) == 2 and not pipeline.announced()


def test_a_deleted_or_unshared_file_is_pruned(pipeline: Pipeline, bamboo: FakeBambooHR) -> None:
    first = sync(pipeline, uri(bamboo))
    del bamboo.files[101]
    bamboo.files[102].shared = False
    report = sync(pipeline, uri(bamboo))
    assert sorted(report.removed) == sorted(first.added)
    assert len(pipeline.removed()) == 2


def test_throttling_is_waited_out(pipeline: Pipeline, bamboo: FakeBambooHR) -> None:
    bamboo.throttle(2, status=503)
    bamboo.throttle(1, status=429, retry_after="1")
    started = time.monotonic()
    report = sync(pipeline, uri(bamboo))
    assert len(report.added) == 2 and not report.unreadable
    assert time.monotonic() - started >= 1.0  # the Retry-After was honoured
    assert len(bamboo.api_requests("/api/v1/files/view")) == 4


def test_throttling_that_never_ends_fails_the_sync_and_removes_nothing(
    pipeline: Pipeline, bamboo: FakeBambooHR
) -> None:
    sync(pipeline, uri(bamboo))
    bamboo.throttle(20, status=429, retry_after="0")
    with pytest.raises(SourceError, match="kept failing"):
        sync(pipeline, uri(bamboo))
    assert pipeline.removed() == []


@pytest.mark.parametrize(
    "body",
    [b"<html>maintenance</html>", b'{"categories": "none"}', b'{"categories": [{"files": [{}]}]}'],
)
def test_a_malformed_listing_is_a_clear_failure_and_removes_nothing(
    pipeline: Pipeline, bamboo: FakeBambooHR, body: bytes
) -> None:
    sync(pipeline, uri(bamboo))
    bamboo.break_next(body)
    with pytest.raises(SourceError, match="BambooHR"):
        sync(pipeline, uri(bamboo))
    assert pipeline.removed() == []
    assert len(pipeline.index.list_documents(TENANT)) == 2


def test_a_refused_key_is_a_clear_error_that_never_shows_the_key(
    pipeline: Pipeline, bamboo: FakeBambooHR
) -> None:
    with pytest.raises(SourceError) as raised:
        sync(pipeline, uri(bamboo, key="wrong-secret-key"))
    assert "refused the credentials (401)" in str(raised.value)
    assert "wrong-secret-key" not in str(raised.value)
    shown = open_source(uri(bamboo, key="wrong-secret-key"))
    assert "wrong-secret-key" not in shown.display_uri + repr(shown)


def test_a_download_over_the_size_limit_fails_that_document_only(
    pipeline: Pipeline, bamboo: FakeBambooHR
) -> None:
    bamboo.add_file("Handbook", "Huge", "huge.txt", b"x" * 5000)
    with closing(open_source(uri(bamboo), max_bytes=4000)) as source:
        report = pipeline.syncer.sync(source, TENANT)
    failed = [d for d in pipeline.index.list_documents(TENANT) if d.status == "failed"]
    assert len(report.added) == 3
    assert [d.source_uri.rsplit("/", 1)[1] for d in failed] == ["huge.txt"]


def test_employees_come_from_the_custom_report_minimised(bamboo: FakeBambooHR) -> None:
    bamboo.employees = [
        {
            "id": "7",
            "workEmail": "ann@acme.example",
            "country": "United Kingdom",
            "state": "",
            "employmentHistoryStatus": "Full-Time",
            "department": "Engineering",
            "location": "London",
            "ssn": "123-45-6789",
        },
        {
            "id": "8",
            "workEmail": "bob@acme.example",
            "country": "United States",
            "state": "CA",
            "employmentHistoryStatus": "Part-Time",
            "department": "Sales",
            "location": "Remote",
        },
    ]
    with closing(open_source(uri(bamboo))) as source:
        assert isinstance(source, BambooHRSource) and isinstance(source, EmployeeFeed)
        found = list(source.employees())
    assert found == [
        Employee("7", "ann@acme.example", "GB", None, "full-time", "Engineering", "London"),
        Employee("8", "bob@acme.example", "US", "CA", "part-time", "Sales", "Remote"),
    ]
    report = bamboo.api_requests("/api/v1/reports/custom")[0]
    assert report.query == {"format": "JSON", "onlyCurrent": "true"}
    assert b"ssn" not in report.body


def test_the_connector_syncs_a_registered_account_and_never_logs_the_key(
    tmp_path: Path, pipeline: Pipeline, bamboo: FakeBambooHR
) -> None:
    blobs = LocalBlobStore(tmp_path / "registry")
    catalog = SourceCatalog(blobs, FernetSecretStore(blobs, Fernet.generate_key()))
    registered = catalog.add(TENANT, uri(bamboo))
    scheduler = Scheduler(
        catalog=catalog,
        syncer=pipeline.syncer,
        index=pipeline.index,
        directory=SqliteEmployeeDirectory(tmp_path / "employees.db"),
        interval_s=3600,
        max_bytes=1 << 20,
    )
    with capture_logs() as logs:
        assert scheduler.poll() == 1  # a new source is due at once
        bamboo.throttle(20, status=503, retry_after="0")
        assert scheduler.sync(registered, "request").status == "failed"
    assert len(pipeline.index.list_documents(TENANT)) == 2
    failed = [e for e in logs if e["event"] == "source.sync_failed"]
    assert len(failed) == 1 and failed[0]["source"].startswith("bamboohr://acme?api_base=")
    assert bamboo.api_key not in str(logs)
    assert bamboo.api_key.encode() not in b"".join(blobs.get(k) for k in blobs.list(""))


def test_a_file_larger_than_its_listing_said_is_cut_off_at_the_limit(
    bamboo: FakeBambooHR,
) -> None:
    with closing(open_source(uri(bamboo), max_bytes=1000)) as source:
        (pension, _) = source.listing().files
        bamboo.files[101].data = b"y" * 5000  # grew after the listing: the stream is cut
        with pytest.raises(FileTooLarge):
            source.read(pension)
