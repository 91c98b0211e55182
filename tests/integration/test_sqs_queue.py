"""What only the SQS queue does: large bodies through S3, its DLQ and redrive policy, settings.

Against moto's server over HTTP. The behaviour every queue shares is
tests/contracts/test_queue_adapters.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from datatorag.adapters.blob.s3 import S3BlobStore
from datatorag.adapters.queue.sqs import PAYLOAD_PREFIX, SqsQueue
from datatorag.domain.errors import DatatoRAGError
from datatorag.settings import Settings
from tests.contracts.queue import LARGE_BODY, receive_all
from tests.fixtures.aws import AWS_TEST_CREDENTIALS, AWS_TEST_REGION

pytestmark = pytest.mark.integration


@pytest.fixture
def sqs_queue(
    aws_client: Callable[[str], Any],
    unique_name: Callable[[str], str],
    payload_store: S3BlobStore,
) -> SqsQueue:
    return SqsQueue.ensure(
        aws_client("sqs"),
        unique_name("q"),
        max_receives=2,
        visibility_timeout=1.0,
        payloads=payload_store,
    )


def test_large_body_travels_through_s3(sqs_queue: SqsQueue, payload_store: S3BlobStore) -> None:
    sqs_queue.send(LARGE_BODY)
    [key] = payload_store.list(PAYLOAD_PREFIX)
    raw = sqs_queue.client.receive_message(QueueUrl=sqs_queue.queue_url, VisibilityTimeout=0)
    [pointer] = raw["Messages"]
    assert key in pointer["Body"] and len(pointer["Body"]) < 200
    [message] = sqs_queue.receive(wait_seconds=2)
    assert message.body == LARGE_BODY
    sqs_queue.delete(message.receipt)
    assert list(payload_store.list(PAYLOAD_PREFIX)) == []
    assert sqs_queue.depth() == 0


def test_small_body_stays_in_sqs(sqs_queue: SqsQueue, payload_store: S3BlobStore) -> None:
    sqs_queue.send("x" * 200_000)
    assert list(payload_store.list(PAYLOAD_PREFIX)) == []
    [message] = sqs_queue.receive(wait_seconds=2)
    assert message.body == "x" * 200_000


def test_dead_lettered_large_message_keeps_its_payload(
    sqs_queue: SqsQueue, payload_store: S3BlobStore
) -> None:
    sqs_queue.send(LARGE_BODY)
    [message] = sqs_queue.receive(wait_seconds=2)
    sqs_queue.dead_letter(message, "too many pages")
    assert sqs_queue.dead_letters() == [(LARGE_BODY, "too many pages")]
    assert len(list(payload_store.list(PAYLOAD_PREFIX))) == 1


def test_pointer_whose_payload_is_gone_is_dropped(
    sqs_queue: SqsQueue, payload_store: S3BlobStore
) -> None:
    sqs_queue.send(LARGE_BODY)
    [key] = payload_store.list(PAYLOAD_PREFIX)
    payload_store.delete(key)  # as after an acknowledged delete
    sqs_queue.send("next")
    assert [m.body for m in receive_all(sqs_queue, 1)] == ["next"]
    assert sqs_queue.depth() == 1  # only "next", in flight; the orphan pointer was deleted


def test_large_message_without_payload_store_is_refused(
    sqs_queue: SqsQueue, aws_client: Callable[[str], Any]
) -> None:
    bare = SqsQueue(aws_client("sqs"), sqs_queue.queue_url)
    with pytest.raises(ValueError, match="limit"):
        bare.send(LARGE_BODY)


def test_dead_letter_queue_found_from_redrive_policy(
    sqs_queue: SqsQueue, aws_client: Callable[[str], Any]
) -> None:
    sqs_queue.send("bad")
    [message] = sqs_queue.receive(wait_seconds=2)
    sqs_queue.dead_letter(message, "broken")
    by_url = SqsQueue(aws_client("sqs"), sqs_queue.queue_url)  # no DLQ URL given
    assert by_url.dead_letters() == [("bad", "broken")]


def test_ensure_is_idempotent_and_sets_the_redrive_policy(
    aws_client: Callable[[str], Any], unique_name: Callable[[str], str]
) -> None:
    sqs = aws_client("sqs")
    name = unique_name("q")
    first = SqsQueue.ensure(sqs, name, max_receives=3, visibility_timeout=10)
    again = SqsQueue.ensure(sqs, name, max_receives=4, visibility_timeout=2.5)
    assert again.queue_url == first.queue_url
    attributes = sqs.get_queue_attributes(QueueUrl=first.queue_url, AttributeNames=["All"])
    policy = json.loads(attributes["Attributes"]["RedrivePolicy"])
    assert int(policy["maxReceiveCount"]) == 4
    assert policy["deadLetterTargetArn"].endswith(f":{name}-dlq")
    assert attributes["Attributes"]["VisibilityTimeout"] == "3"  # whole seconds, rounded up


def test_from_settings(
    moto_server: str, unique_name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # from_settings uses boto3's default credential chain, as a deployment does.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_TEST_CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_TEST_CREDENTIALS["aws_secret_access_key"])
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        aws_endpoint_url=moto_server,
        aws_region=AWS_TEST_REGION,
        s3_bucket=unique_name("bucket"),
        sqs_queue_prefix=unique_name("prefix") + "-",
        max_receives=2,
    )
    with pytest.raises(DatatoRAGError, match="does not exist"):
        SqsQueue.from_settings(settings, "documents")
    S3BlobStore.from_settings(settings).ensure_bucket()
    created = SqsQueue.from_settings(settings, "documents", create=True)
    found = SqsQueue.from_settings(settings, "documents")
    assert (found.name, found.queue_url) == ("documents", created.queue_url)
    found.send(LARGE_BODY)  # the payload store is the settings' bucket
    [message] = created.receive(wait_seconds=2)
    assert message.body == LARGE_BODY
