"""Every S3 call the connector and the embedder-client make is allowed by their task roles.

As ``test_api_s3_permissions.py`` does for the API: each service's own code on S3 (moto's
server), botocore reporting every call, each checked against the role in security.yaml
(``tests/fixtures/cfn.py``). The connector polls the registry, takes a sync request, syncs a
folder and records the run, and undoes a source deleted while it synced; the embedder-client
drops a document that left its source (its raw files and chunk sets).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datatorag import wiring
from datatorag.adapters.blob.s3 import S3BlobStore
from datatorag.domain.blob_keys import SOURCES_PREFIX, chunks_key, raw_key
from datatorag.domain.messages import DocumentRemoved
from datatorag.domain.models import DocumentRecord, DocumentStatus
from datatorag.settings import Settings
from datatorag_connector.bootstrap import build_scheduler, source_catalog
from datatorag_embedder.handler import Embedder
from tests.fixtures.aws import AWS_TEST_CREDENTIALS, AWS_TEST_REGION
from tests.fixtures.cfn import S3Calls

pytestmark = pytest.mark.integration

TENANT = "acme"


@pytest.fixture
def settings(
    moto_server: str,
    aws_client: Callable[[str], Any],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    for name, value in AWS_TEST_CREDENTIALS.items():
        monkeypatch.setenv(name.upper(), value)
    bucket = unique_name("worker-roles")
    aws_client("s3").create_bucket(Bucket=bucket)
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        blob_backend="s3",
        secrets_backend="secretsmanager",
        aws_endpoint_url=moto_server,
        aws_region=AWS_TEST_REGION,
        s3_bucket=bucket,
        secrets_prefix=f"{unique_name('worker-roles')}/",
    )


def test_every_s3_call_of_the_connector_is_allowed_by_its_task_role(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "leave.md").write_text("# Leave\n\nStaff get 25 days of annual leave.\n")
    (folder / "travel.md").write_text("# Travel\n\nBook economy for trips under 6 hours.\n")
    api_side = source_catalog(settings)  # what the API does: register, ask for a sync
    source = api_side.add(TENANT, folder.as_uri())
    api_side.request_sync(source)

    calls = S3Calls()
    calls.attach(monkeypatch)
    scheduler = build_scheduler(settings)
    assert scheduler.poll() == 1  # the registry, the request taken, the files, the run recorded
    index = scheduler.index
    assert len(index.list_documents(TENANT)) == 2
    # The source is deleted (by the API) while the connector syncs it: it undoes the sync.
    registered = scheduler.catalog.get(TENANT, source.id)
    S3BlobStore.from_settings(settings).client.delete_object(
        Bucket=settings.s3_bucket, Key=f"{SOURCES_PREFIX}{TENANT}/{source.id}.json"
    )
    scheduler.sync(registered, "schedule")
    assert {d.status for d in index.list_documents(TENANT)} == {DocumentStatus.DELETED}

    refused = calls.refused_by("ConnectorTaskRole", settings.s3_bucket)
    assert not refused, "the connector task role refuses:\n" + "\n".join(refused)
    assert {"ListObjectsV2", "PutObject", "DeleteObject"} <= calls.operations()


def test_every_s3_call_of_the_embedder_client_is_allowed_by_its_task_role(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A document the processor stored: its raw file, its chunk set and its record.
    blobs = wiring.blob_store(settings)
    doc_id, version = "doc_0123456789abcdef0123", "a" * 64
    blobs.put(raw_key(TENANT, doc_id, version, ".md"), b"# Leave\n")
    blobs.put(chunks_key(TENANT, doc_id, version), b"{}")
    index = wiring.search_index(settings)
    index.upsert_document(
        DocumentRecord(
            tenant=TENANT,
            doc_id=doc_id,
            source_id="src",
            source_uri="file:///policies/leave.md",
            title="Leave",
            media_type="text/markdown",
            version=version,
        )
    )

    calls = S3Calls()
    calls.attach(monkeypatch)
    embedder = Embedder(wiring.blob_store(settings), index, wiring.embeddings(settings))
    embedder.handle(DocumentRemoved(tenant=TENANT, doc_id=doc_id))  # it left its source

    assert list(blobs.list(f"tenants/{TENANT}/")) == []
    refused = calls.refused_by("EmbedderTaskRole", settings.s3_bucket)
    assert not refused, "the embedder-client task role refuses:\n" + "\n".join(refused)
