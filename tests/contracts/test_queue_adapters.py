"""The Queue contract on SQLite and on SQS (moto server over HTTP), plus adapter specifics."""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from datatorag.adapters.blob.s3 import S3BlobStore
from datatorag.adapters.queue.sqlite import SqliteQueue
from datatorag.adapters.queue.sqs import PAYLOAD_PREFIX, SqsQueue
from datatorag.domain.errors import DatatoRAGError
from datatorag.settings import Settings
from tests.contracts.queue import LARGE_BODY, MakeQueue, QueueContract, receive_all
from tests.fixtures.aws import AWS_TEST_CREDENTIALS, AWS_TEST_REGION

# -- SQLite -----------------------------------------------------------------------------------


@pytest.mark.unit
class TestSqliteQueue(QueueContract):
    visibility = 0.3

    @pytest.fixture
    def make_queue(self, tmp_path: Path) -> Iterator[MakeQueue]:
        made: list[SqliteQueue] = []

        def make(
            *, max_receives: int = 2, visibility_timeout: float = self.visibility
        ) -> SqliteQueue:
            # Every queue of a test shares one file, as the services' queues do.
            queue = SqliteQueue(
                tmp_path / "queues.db",
                f"q-{uuid.uuid4().hex[:8]}",
                max_receives=max_receives,
                visibility_timeout=visibility_timeout,
            )
            made.append(queue)
            return queue

        yield make
        for queue in made:
            queue.close()

    def test_messages_survive_reopening(self, tmp_path: Path) -> None:
        db = tmp_path / "queues.db"
        first = SqliteQueue(db, "documents", max_receives=2, visibility_timeout=30)
        message_id = first.send("durable")
        [received] = first.receive()
        first.close()
        again = SqliteQueue(db, "documents", max_receives=2, visibility_timeout=30)
        assert again.depth() == 1
        again.change_visibility(received.receipt, 0)  # receipts outlive the connection too
        [message] = again.receive()
        assert (message.message_id, message.body, message.receive_count) == (
            message_id,
            "durable",
            2,
        )
        again.close()

    def test_two_handles_on_one_queue_share_messages(self, tmp_path: Path) -> None:
        db = tmp_path / "queues.db"
        producer = SqliteQueue(db, "chunks", max_receives=2, visibility_timeout=30)
        consumer = SqliteQueue(db, "chunks", max_receives=2, visibility_timeout=30)
        producer.send("hello")
        [message] = consumer.receive(wait_seconds=1)
        assert producer.receive() == []  # hidden from every handle while in flight
        producer.delete(message.receipt)
        assert consumer.depth() == 0

    @pytest.mark.parametrize(
        ("max_receives", "visibility_timeout"), [(0, 1.0), (2, -1.0)], ids=["receives", "timeout"]
    )
    def test_bad_settings_are_refused(
        self, tmp_path: Path, max_receives: int, visibility_timeout: float
    ) -> None:
        with pytest.raises(ValueError):
            SqliteQueue(
                tmp_path / "q.db",
                "q",
                max_receives=max_receives,
                visibility_timeout=visibility_timeout,
            )


MESSAGES_FOR_TWO_PROCESSES = 300


def _drain(db_path: str, name: str, out: str, barrier: Any) -> None:
    """Child process: receive and delete until the queue is empty; record what arrived."""
    queue = SqliteQueue(Path(db_path), name, max_receives=5, visibility_timeout=60)
    barrier.wait(timeout=60)  # both children start receiving at the same moment
    got: list[tuple[str, str, int]] = []
    while True:
        messages = queue.receive(max_messages=3)
        if not messages and queue.depth() == 0:
            break
        for message in messages:
            got.append((message.message_id, message.body, message.receive_count))
            time.sleep(0.002)  # a little work, as a real worker does: the other process gets turns
            queue.delete(message.receipt)
    Path(out).write_text(json.dumps(got))
    queue.close()


@pytest.mark.integration
def test_two_processes_never_receive_the_same_message(tmp_path: Path) -> None:
    db = tmp_path / "queues.db"
    queue = SqliteQueue(db, "documents", max_receives=5, visibility_timeout=60)
    bodies = [f"doc-{n}" for n in range(MESSAGES_FOR_TWO_PROCESSES)]
    ids = queue.send_batch(bodies)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    outs = [tmp_path / f"worker-{n}.json" for n in range(2)]
    workers = [
        context.Process(target=_drain, args=(str(db), "documents", str(out), barrier))
        for out in outs
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    per_worker = [json.loads(out.read_text()) for out in outs]
    received = [entry for got in per_worker for entry in got]
    # Exactly once: the visibility timeout (60 s) never lapses, so no redelivery is allowed.
    assert sorted(m[0] for m in received) == sorted(ids)
    assert sorted(m[1] for m in received) == sorted(bodies)
    assert all(m[2] == 1 for m in received)
    assert all(len(got) > 0 for got in per_worker), "one process received nothing: no contention"
    assert queue.depth() == 0
    queue.close()


# -- SQS --------------------------------------------------------------------------------------


@pytest.fixture
def payload_store(
    aws_client: Callable[[str], Any], unique_name: Callable[[str], str]
) -> S3BlobStore:
    store = S3BlobStore(aws_client("s3"), unique_name("payloads"))
    store.ensure_bucket()
    return store


@pytest.mark.integration
class TestSqsQueue(QueueContract):
    visibility = 1.0  # SQS counts whole seconds
    # moto deletes with an old receipt; AWS documents that it "might not": both are allowed.
    stale_delete_keeps_message = False

    @pytest.fixture
    def make_queue(
        self,
        aws_client: Callable[[str], Any],
        unique_name: Callable[[str], str],
        payload_store: S3BlobStore,
    ) -> MakeQueue:
        sqs = aws_client("sqs")

        def make(*, max_receives: int = 2, visibility_timeout: float = self.visibility) -> SqsQueue:
            return SqsQueue.ensure(
                sqs,
                unique_name("q"),
                max_receives=max_receives,
                visibility_timeout=visibility_timeout,
                payloads=payload_store,
            )

        return make

    def test_large_body_travels_through_s3(
        self, queue: SqsQueue, payload_store: S3BlobStore
    ) -> None:
        queue.send(LARGE_BODY)
        [key] = payload_store.list(PAYLOAD_PREFIX)
        raw = queue.client.receive_message(QueueUrl=queue.queue_url, VisibilityTimeout=0)
        [pointer] = raw["Messages"]
        assert key in pointer["Body"] and len(pointer["Body"]) < 200
        [message] = queue.receive(wait_seconds=2)
        assert message.body == LARGE_BODY
        queue.delete(message.receipt)
        assert list(payload_store.list(PAYLOAD_PREFIX)) == []
        assert queue.depth() == 0

    def test_small_body_stays_in_sqs(self, queue: SqsQueue, payload_store: S3BlobStore) -> None:
        queue.send("x" * 200_000)
        assert list(payload_store.list(PAYLOAD_PREFIX)) == []
        [message] = queue.receive(wait_seconds=2)
        assert message.body == "x" * 200_000

    def test_dead_lettered_large_message_keeps_its_payload(
        self, queue: SqsQueue, payload_store: S3BlobStore
    ) -> None:
        queue.send(LARGE_BODY)
        [message] = queue.receive(wait_seconds=2)
        queue.dead_letter(message, "too many pages")
        assert queue.dead_letters() == [(LARGE_BODY, "too many pages")]
        assert len(list(payload_store.list(PAYLOAD_PREFIX))) == 1

    def test_pointer_whose_payload_is_gone_is_dropped(
        self, queue: SqsQueue, payload_store: S3BlobStore
    ) -> None:
        queue.send(LARGE_BODY)
        [key] = payload_store.list(PAYLOAD_PREFIX)
        payload_store.delete(key)  # as after an acknowledged delete
        queue.send("next")
        assert [m.body for m in receive_all(queue, 1)] == ["next"]
        assert queue.depth() == 1  # only "next", in flight; the orphan pointer was deleted

    def test_large_message_without_payload_store_is_refused(
        self, queue: SqsQueue, aws_client: Callable[[str], Any]
    ) -> None:
        bare = SqsQueue(aws_client("sqs"), queue.queue_url)
        with pytest.raises(ValueError, match="limit"):
            bare.send(LARGE_BODY)

    def test_dead_letter_queue_found_from_redrive_policy(
        self, queue: SqsQueue, aws_client: Callable[[str], Any]
    ) -> None:
        queue.send("bad")
        [message] = queue.receive(wait_seconds=2)
        queue.dead_letter(message, "broken")
        by_url = SqsQueue(aws_client("sqs"), queue.queue_url)  # no DLQ URL given
        assert by_url.dead_letters() == [("bad", "broken")]

    def test_ensure_is_idempotent_and_sets_the_redrive_policy(
        self, aws_client: Callable[[str], Any], unique_name: Callable[[str], str]
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
        self, moto_server: str, unique_name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
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
