"""Registered sources in the shared blob store, credentials in the secret store: on the local
folder and on S3 (moto over HTTP)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.blob.s3 import S3BlobStore
from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.adapters.secrets.fernet import FernetSecretStore
from datatorag.domain.models import DocumentRecord, DocumentStatus, IndexedChunk, utcnow
from datatorag.domain.sources import SyncRun, registry_id
from datatorag.domain.tenants import TENANT_RULE
from datatorag.ports import BlobStore
from datatorag.settings import Settings
from datatorag.usecases.sources import (
    HISTORY_PREFIX,
    SOURCES_PREFIX,
    SourceCatalog,
    SourceNotFound,
)
from datatorag_connector.bootstrap import source_catalog

SECRET_URI = "sftp://alice:s3cr3t-pw@files.example.com:2222/hr?token=abc123"
SECRETS = ("s3cr3t-pw", "abc123", "alice")


# Markers per backend: local cases are unit tests; S3 ones start moto's server (integration).
@pytest.fixture(
    params=[
        pytest.param("local", marks=pytest.mark.unit),
        pytest.param("s3", marks=pytest.mark.integration),
    ]
)
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    aws_client: Callable[[str], Any] = request.getfixturevalue("aws_client")
    unique_name: Callable[[str], str] = request.getfixturevalue("unique_name")
    store = S3BlobStore(aws_client("s3"), unique_name("sources"))
    store.ensure_bucket()
    return store


@pytest.fixture
def catalog(blobs: BlobStore) -> SourceCatalog:
    return SourceCatalog(blobs, FernetSecretStore(blobs, Fernet.generate_key()))


def everything_stored(blobs: BlobStore, tmp_path: Path) -> bytes:
    data = b"\n".join(blobs.get(k) for k in blobs.list(""))
    if isinstance(blobs, LocalBlobStore):
        data += b"\n".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    return data


def test_an_empty_catalog_lists_nothing(catalog: SourceCatalog) -> None:
    assert catalog.all() == [] and catalog.of_tenant("acme") == []


def test_sources_round_trip_with_metadata(catalog: SourceCatalog) -> None:
    a = catalog.add("acme", "file:///srv/hr", {"country": "FR"})
    b = catalog.add("globex", "ftp://ftp.example.com/policies")
    assert [(s.tenant, s.kind, s.display_uri, s.metadata) for s in catalog.all()] == sorted(
        [
            ("acme", "file", "file:///srv/hr", {"country": "FR"}),
            ("globex", "ftp", "ftp://ftp.example.com/policies", {}),
        ]
    )
    assert catalog.get("acme", a.id) == a and catalog.uri(b) == "ftp://ftp.example.com/policies"


def test_credentials_are_stored_encrypted_and_never_shown(
    catalog: SourceCatalog, blobs: BlobStore, tmp_path: Path
) -> None:
    source = catalog.add("acme", SECRET_URI)
    shown = " ".join(
        [repr(source), source.model_dump_json(), catalog.view(source).model_dump_json()]
    )
    stored = everything_stored(blobs, tmp_path)
    for secret in SECRETS:
        assert secret not in shown
        assert secret.encode() not in stored
    assert source.display_uri == "sftp://files.example.com:2222/hr?token=REDACTED"
    assert catalog.uri(source) == SECRET_URI  # the connector still gets it whole


def test_registering_again_replaces_credentials_and_tenants_stay_apart(
    catalog: SourceCatalog,
) -> None:
    first = catalog.add("acme", "sftp://alice:old@h/hr", {"v": 1})
    again = catalog.add("acme", "sftp://alice:new@h/hr", {"v": 2})
    other = catalog.add("globex", "sftp://alice:new@h/hr")
    assert first.id == again.id != other.id
    assert again.created_at == first.created_at
    assert [s.metadata for s in catalog.of_tenant("acme")] == [{"v": 2}]
    assert catalog.uri(again) == "sftp://alice:new@h/hr"
    with pytest.raises(SourceNotFound):
        catalog.get("globex", first.id)  # another tenant's id is no id at all


def test_every_process_sees_the_same_sources(blobs: BlobStore) -> None:
    """Two catalogs on one blob store stand for an API task and a connector task."""
    key = Fernet.generate_key()
    SourceCatalog(blobs, FernetSecretStore(blobs, key)).add("acme", SECRET_URI)
    [seen] = SourceCatalog(blobs, FernetSecretStore(blobs, key)).all()
    assert SourceCatalog(blobs, FernetSecretStore(blobs, key)).uri(seen) == SECRET_URI


@pytest.mark.unit
@pytest.mark.parametrize("uri", ["", "/srv/hr", "no scheme", "://host", "1ftp://h/x", "ftp://"])
def test_what_is_no_uri_is_refused(tmp_path: Path, uri: str) -> None:
    blobs = LocalBlobStore(tmp_path)
    with pytest.raises(ValueError, match="URI"):
        SourceCatalog(blobs, FernetSecretStore(blobs, Fernet.generate_key())).add("acme", uri)
    assert list(blobs.list("")) == []


@pytest.mark.unit
@pytest.mark.parametrize("tenant", ["../etc", "", "Acme", "a/b", "a" * 64])
def test_tenant_names_are_validated(tmp_path: Path, tenant: str) -> None:
    blobs = LocalBlobStore(tmp_path)
    catalog = SourceCatalog(blobs, FernetSecretStore(blobs, Fernet.generate_key()))
    with pytest.raises(ValueError, match=TENANT_RULE):
        catalog.add(tenant, "ftp://h/x")


def test_clear_records_from_before_are_migrated(
    catalog: SourceCatalog, blobs: BlobStore, tmp_path: Path
) -> None:
    digest = hashlib.sha256(SECRET_URI.encode()).hexdigest()
    old_key = f"{SOURCES_PREFIX}acme/{digest}.json"
    blobs.put(
        old_key, json.dumps({"tenant": "acme", "uri": SECRET_URI, "metadata": {"a": 1}}).encode()
    )
    [source] = catalog.all()
    assert source.metadata == {"a": 1} and catalog.uri(source) == SECRET_URI
    assert source.id == registry_id("acme", source.display_uri)
    assert old_key not in list(blobs.list(SOURCES_PREFIX))
    stored = everything_stored(blobs, tmp_path)
    assert not any(secret.encode() in stored for secret in SECRETS)
    assert catalog.all() == [source]  # once


def test_a_damaged_record_is_skipped_without_showing_it(
    catalog: SourceCatalog,
    blobs: BlobStore,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = catalog.add("acme", "ftp://h/hr")
    blobs.put(f"{SOURCES_PREFIX}acme/damaged.json", SECRET_URI.encode())
    with caplog.at_level(logging.WARNING):
        assert catalog.all() == [source]
    shown = caplog.text + "".join(capsys.readouterr())
    assert "s3cr3t-pw" not in shown


def test_sync_requests_are_taken_once(catalog: SourceCatalog) -> None:
    source = catalog.add("acme", "ftp://h/hr")
    assert not catalog.take_sync_request(source)
    first = catalog.request_sync(source)
    assert catalog.request_sync(source) == first  # asking again changes nothing
    assert catalog.view(source).sync_requested_at == first
    assert catalog.take_sync_request(source)
    assert not catalog.take_sync_request(source)
    assert catalog.view(source).sync_requested_at is None


def test_history_keeps_the_last_ten_newest_first(catalog: SourceCatalog) -> None:
    source = catalog.add("acme", "ftp://h/hr")
    for n in range(12):
        now = utcnow()
        run = SyncRun(
            trigger="schedule",
            started_at=now,
            finished_at=now,
            duration_s=0.1,
            status="succeeded",
            new=n,
        )
        catalog.record_sync(source, run, now)
    view = catalog.view(source)
    assert [r.new for r in view.syncs] == list(range(11, 1, -1))
    assert view.next_sync_at == now


@pytest.mark.unit
def test_deleting_takes_documents_out_of_search_and_forgets_everything(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    index = SqliteSearchIndex(tmp_path / "index")
    catalog = SourceCatalog(blobs, FernetSecretStore(blobs, Fernet.generate_key()))
    source = catalog.add("acme", SECRET_URI, documents_source_id="src_docs")
    kept = catalog.add("acme", "ftp://other/hr", documents_source_id="src_other")
    for doc_id, source_id in (("d1", "src_docs"), ("d2", "src_docs"), ("d3", "src_other")):
        index.upsert_document(
            DocumentRecord(
                tenant="acme",
                doc_id=doc_id,
                source_id=source_id,
                source_uri=doc_id,
                title=doc_id,
                version="v1",
            )
        )
        chunk = IndexedChunk(
            chunk_id=f"{doc_id}:v1:0",
            doc_id=doc_id,
            ordinal=0,
            text="pension plan",
            vector=[1.0] + [0.0] * 383,
        )
        assert index.replace_chunks("acme", doc_id, "v1", [chunk])
        blobs.put(f"tenants/acme/raw/{doc_id}/v1.md", b"# pension")
    catalog.request_sync(source)
    catalog.record_sync(
        source,
        SyncRun(
            trigger="request",
            started_at=utcnow(),
            finished_at=utcnow(),
            duration_s=0,
            status="succeeded",
        ),
        utcnow(),
    )
    assert catalog.delete(source, index) == 2
    assert [h.doc_id for h in index.keyword_search("acme", "pension", 10)] == ["d3"]
    assert index.get_document("acme", "d1").status == DocumentStatus.DELETED  # type: ignore[union-attr]
    assert list(blobs.list("tenants/acme/raw/")) == ["tenants/acme/raw/d3/v1.md"]
    assert catalog.of_tenant("acme") == [kept]
    assert not list(blobs.list(HISTORY_PREFIX)) and not list(blobs.list("system/sync-requests/"))
    assert list(blobs.list("system/secrets/")) == [f"system/secrets/sources/acme/{kept.id}"]


@pytest.mark.unit
def test_the_connector_keeps_sources_in_the_configured_blob_store(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    source_catalog(settings).add("acme", SECRET_URI)
    assert list((tmp_path / "blobs" / "system" / "sources" / "acme").glob("*.json"))
    assert (tmp_path / "secrets.key").stat().st_mode & 0o777 == 0o600
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert b"s3cr3t-pw" not in stored


def test_listings_name_sources_and_requests_without_reading_them(
    catalog: SourceCatalog, blobs: BlobStore
) -> None:
    source = catalog.add("acme", "ftp://h/hr")
    digest = hashlib.sha256(SECRET_URI.encode()).hexdigest()
    legacy = {"tenant": "globex", "uri": SECRET_URI, "metadata": {}}
    blobs.put(f"{SOURCES_PREFIX}globex/{digest}.json", json.dumps(legacy).encode())
    listed = catalog.listed()  # migrates the clear record it sees first
    [migrated] = catalog.of_tenant("globex")
    assert listed == {("acme", source.id), ("globex", migrated.id)}
    assert catalog.requested() == set()
    catalog.request_sync(source)
    assert catalog.requested() == {("acme", source.id)}
