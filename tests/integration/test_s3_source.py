"""``s3://bucket/prefix`` against moto in server mode (real boto3 over HTTP), and its events.

The bucket sends its event notifications to an SQS queue (moto delivers them as S3 does); the
connector applies each created or removed object at once, without a full sync.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.adapters.queue.sqlite import SqliteQueue
from datatorag.adapters.secrets.fernet import FernetSecretStore
from datatorag.domain.errors import SourceError
from datatorag.domain.messages import DocumentFetched, DocumentRemoved, decode
from datatorag.usecases.sources import SourceCatalog
from datatorag_connector.s3_events import S3EventWatcher, apply_events
from datatorag_connector.sources import open_source, source_id_of
from datatorag_connector.sources.s3 import S3Source
from datatorag_connector.sync import Syncer
from tests.fixtures.aws import AWS_TEST_CREDENTIALS, AWS_TEST_REGION

pytestmark = pytest.mark.integration

TENANT = "acme"


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "DATATORAG_AWS_ENDPOINT_URL": moto_server,
        "DATATORAG_AWS_REGION": AWS_TEST_REGION,
        "AWS_ACCESS_KEY_ID": AWS_TEST_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": AWS_TEST_CREDENTIALS["aws_secret_access_key"],
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def bucket(aws_client: Callable[[str], Any], unique_name: Callable[[str], str]) -> Iterator[str]:
    name = unique_name("drop")
    s3 = aws_client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="hr/leave.md", Body=b"# Leave\n25 days.")
    s3.put_object(Bucket=name, Key="hr/benefits/pension.md", Body=b"# Pension\nRoyal London.")
    s3.put_object(Bucket=name, Key="hr/.hidden.md", Body=b"hidden")
    s3.put_object(Bucket=name, Key="hr/logo.png", Body=b"\x89PNG")
    s3.put_object(Bucket=name, Key="hr/", Body=b"")  # a console "folder"
    s3.put_object(Bucket=name, Key="other/outside.md", Body=b"# Outside the prefix")
    yield name


@pytest.fixture
def syncer(tmp_path: Path) -> Syncer:
    options: dict[str, Any] = {"max_receives": 3, "visibility_timeout": 60}
    return Syncer(
        LocalBlobStore(tmp_path / "blobs"),
        SqliteSearchIndex(tmp_path / "index"),
        SqliteQueue(tmp_path / "q.db", "documents", **options),
        SqliteQueue(tmp_path / "q.db", "chunks", **options),
    )


def drain(queue: SqliteQueue) -> list[Any]:
    found = []
    while batch := queue.receive(max_messages=10):
        for message in batch:
            found.append(decode(message.body))
            queue.delete(message.receipt)
    return found


def test_files_under_the_prefix_sync_update_and_prune(
    aws_env: dict[str, str], bucket: str, aws_client: Callable[[str], Any], syncer: Syncer
) -> None:
    uri = f"s3://{bucket}/hr"
    with closing(open_source(uri)) as source:
        assert source.display_uri == f"s3://{bucket}/hr"
        assert source.source_id == source_id_of(uri)
        report = syncer.sync(source, TENANT)
        assert sorted(u.removeprefix(uri + "/") for u in report.added) == [
            "benefits/pension.md",
            "leave.md",
        ]
        s3 = aws_client("s3")
        s3.put_object(Bucket=bucket, Key="hr/leave.md", Body=b"# Leave\n30 days.")
        s3.delete_object(Bucket=bucket, Key="hr/benefits/pension.md")
        again = syncer.sync(source, TENANT)
    assert [u.removeprefix(uri + "/") for u in again.changed] == ["leave.md"]
    assert [u.removeprefix(uri + "/") for u in again.removed] == ["benefits/pension.md"]


def test_a_missing_bucket_is_a_clear_error(aws_env: dict[str, str], syncer: Syncer) -> None:
    with (
        pytest.raises(SourceError, match="NoSuchBucket"),
        closing(open_source("s3://no-such-bucket-datatorag/hr")) as source,
    ):
        syncer.sync(source, TENANT)


def test_event_notifications_apply_changes_at_once(
    aws_env: dict[str, str],
    bucket: str,
    aws_client: Callable[[str], Any],
    unique_name: Callable[[str], str],
    syncer: Syncer,
) -> None:
    sqs, s3 = aws_client("sqs"), aws_client("s3")
    queue_url = sqs.create_queue(QueueName=unique_name("drop-events"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
            ]
        },
    )
    source = open_source(f"s3://{bucket}/hr?queue={queue_url}")
    assert isinstance(source, S3Source)
    syncer.sync(source, TENANT)
    drain(syncer.documents_queue)
    while apply_events(syncer, source, TENANT, sqs):  # the test event and the setup's puts
        pass
    drain(syncer.documents_queue)

    s3.put_object(Bucket=bucket, Key="hr/new policy.md", Body=b"# Remote work\nAnywhere.")
    s3.put_object(Bucket=bucket, Key="other/ignored.md", Body=b"# Not under the prefix")
    s3.delete_object(Bucket=bucket, Key="hr/leave.md")
    applied = sum(apply_events(syncer, source, TENANT, sqs, wait_s=1) for _ in range(3))
    assert applied == 2
    fetched = [m for m in drain(syncer.documents_queue) if isinstance(m, DocumentFetched)]
    assert [m.filename for m in fetched] == ["new policy.md"]
    removed = [m for m in drain(syncer.chunks_queue) if isinstance(m, DocumentRemoved)]
    assert len(removed) == 1
    assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages") is None


def test_a_malformed_event_is_dropped_and_changes_nothing(
    aws_env: dict[str, str],
    bucket: str,
    aws_client: Callable[[str], Any],
    unique_name: Callable[[str], str],
    syncer: Syncer,
) -> None:
    sqs = aws_client("sqs")
    queue_url = sqs.create_queue(QueueName=unique_name("drop-events"))["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="not json")
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"Records": [{"s3": 1}]}))
    source = open_source(f"s3://{bucket}/hr?queue={queue_url}")
    assert isinstance(source, S3Source)
    assert apply_events(syncer, source, TENANT, sqs) == 0
    assert drain(syncer.documents_queue) == [] and drain(syncer.chunks_queue) == []


def test_the_connector_watches_the_queues_of_registered_s3_sources(
    aws_env: dict[str, str],
    bucket: str,
    aws_client: Callable[[str], Any],
    unique_name: Callable[[str], str],
    syncer: Syncer,
    tmp_path: Path,
) -> None:
    sqs = aws_client("sqs")
    queue_url = sqs.create_queue(QueueName=unique_name("drop-events"))["QueueUrl"]
    blobs = LocalBlobStore(tmp_path / "registry")
    catalog = SourceCatalog(blobs, FernetSecretStore(blobs, Fernet.generate_key()))
    watcher = S3EventWatcher(syncer, catalog, max_bytes=1 << 20)
    assert watcher.poll() is False  # nothing to watch yet
    catalog.add(TENANT, f"s3://{bucket}/hr?queue={queue_url}")
    event = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": "hr/leave.md", "size": 16}},
            }
        ]
    }
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(event))
    watcher._read_at = -1e9  # the registry is read again now, not after its 30 s
    assert watcher.poll() is True
    fetched = [m for m in drain(syncer.documents_queue) if isinstance(m, DocumentFetched)]
    assert [m.filename for m in fetched] == ["leave.md"]


def test_an_event_for_an_object_deleted_since_is_dropped(
    aws_env: dict[str, str],
    bucket: str,
    aws_client: Callable[[str], Any],
    unique_name: Callable[[str], str],
    syncer: Syncer,
) -> None:
    sqs = aws_client("sqs")
    queue_url = sqs.create_queue(QueueName=unique_name("drop-events"))["QueueUrl"]
    created = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": "hr/gone.md", "size": 3}},
            }
        ]
    }
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(created))
    source = open_source(f"s3://{bucket}/hr?queue={queue_url}")
    assert isinstance(source, S3Source)
    assert apply_events(syncer, source, TENANT, sqs) == 0
    assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages") is None
