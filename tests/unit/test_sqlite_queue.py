"""What only the SQLite queue does: durability across handles and processes, its own settings.

The behaviour every queue shares is tests/contracts/test_queue_adapters.py.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest

from datatorag.adapters.queue.sqlite import SqliteQueue

pytestmark = pytest.mark.unit


def test_messages_survive_reopening(tmp_path: Path) -> None:
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


def test_two_handles_on_one_queue_share_messages(tmp_path: Path) -> None:
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
    tmp_path: Path, max_receives: int, visibility_timeout: float
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
