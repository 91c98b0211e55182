"""Registered sources in the shared blob store: on the local folder and on S3 (moto over HTTP)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.blob.s3 import S3BlobStore
from datatorag.domain.blob_keys import SOURCES_PREFIX
from datatorag.ports import BlobStore
from datatorag.settings import Settings
from datatorag_connector.bootstrap import source_registry
from datatorag_connector.registry import RegisteredSource, SourceRegistry

SECRET_URI = "sftp://alice:s3cr3t-pw@files.example.com:2222/hr?token=abc123"


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
def registry(blobs: BlobStore) -> SourceRegistry:
    return SourceRegistry(blobs)


def test_an_empty_registry_lists_nothing(registry: SourceRegistry) -> None:
    assert registry.all() == []


def test_sources_round_trip_with_metadata(registry: SourceRegistry) -> None:
    registry.add(RegisteredSource(tenant="acme", uri="/srv/hr", metadata={"country": "FR"}))
    registry.add(RegisteredSource(tenant="globex", uri="ftp://ftp.example.com/policies"))
    got = {(s.tenant, s.uri): s.metadata for s in registry.all()}
    assert got == {
        ("acme", "/srv/hr"): {"country": "FR"},
        ("globex", "ftp://ftp.example.com/policies"): {},
    }


def test_one_object_per_source_under_its_tenant(registry: SourceRegistry, blobs: BlobStore) -> None:
    registry.add(RegisteredSource(tenant="acme", uri="/srv/hr"))
    digest = hashlib.sha256(b"/srv/hr").hexdigest()
    assert list(blobs.list(SOURCES_PREFIX)) == [f"{SOURCES_PREFIX}acme/{digest}.json"]
    stored = json.loads(blobs.get(f"{SOURCES_PREFIX}acme/{digest}.json"))
    assert stored["tenant"] == "acme" and stored["uri"] == "/srv/hr"


def test_registering_again_replaces_and_tenants_stay_apart(registry: SourceRegistry) -> None:
    registry.add(RegisteredSource(tenant="acme", uri="/srv/hr", metadata={"v": 1}))
    registry.add(RegisteredSource(tenant="acme", uri="/srv/hr", metadata={"v": 2}))
    registry.add(RegisteredSource(tenant="globex", uri="/srv/hr"))
    got = sorted((s.tenant, s.metadata.get("v")) for s in registry.all())
    assert got == [("acme", 2), ("globex", None)]


def test_every_process_sees_the_same_sources(blobs: BlobStore) -> None:
    """Two registries on one blob store stand for two connector tasks on one bucket."""
    SourceRegistry(blobs).add(RegisteredSource(tenant="acme", uri="/srv/hr"))
    assert [s.uri for s in SourceRegistry(blobs).all()] == ["/srv/hr"]


@pytest.mark.unit
@pytest.mark.parametrize("tenant", ["../etc", "", "Acme", "a/b", "a" * 64])
def test_tenant_names_are_validated(tenant: str) -> None:
    with pytest.raises(ValidationError, match="tenant names"):
        RegisteredSource(tenant=tenant, uri="/srv/hr")


def test_credentials_stay_out_of_repr_and_display(registry: SourceRegistry) -> None:
    source = RegisteredSource(tenant="acme", uri=SECRET_URI)
    for shown in (repr(source), str(source), source.display_uri):
        assert "s3cr3t-pw" not in shown and "abc123" not in shown and "alice" not in shown
    assert source.display_uri.startswith("sftp://files.example.com:2222/hr")
    registry.add(source)
    assert [s.uri for s in registry.all()] == [SECRET_URI]  # the connector still gets it whole


def test_a_damaged_record_is_skipped_without_showing_it(
    registry: SourceRegistry,
    blobs: BlobStore,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry.add(RegisteredSource(tenant="acme", uri="/srv/hr"))
    blobs.put(f"{SOURCES_PREFIX}acme/damaged.json", SECRET_URI.encode())
    with caplog.at_level(logging.WARNING):
        assert [s.uri for s in registry.all()] == ["/srv/hr"]
    shown = caplog.text + "".join(capsys.readouterr())
    assert "s3cr3t-pw" not in shown


@pytest.mark.unit
def test_the_connector_keeps_sources_in_the_configured_blob_store(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    source_registry(settings).add(RegisteredSource(tenant="acme", uri="/srv/hr"))
    assert list((tmp_path / "blobs" / "system" / "sources" / "acme").glob("*.json"))
    assert not (tmp_path / "connector").exists()  # the old per-task file is gone
