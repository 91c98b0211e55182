"""Behaviour every Queue adapter must show (SQS semantics).

Subclass ``QueueContract`` in a ``Test*`` class and provide a ``make_queue`` fixture: a factory
``make_queue(*, max_receives, visibility_timeout) -> Queue`` returning a new, empty queue with
its own name on each call. ``visibility`` is the short timeout the tests use (SQS counts whole
seconds, so its adapters use 1 s).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest

from datatorag.ports import Queue, ReceivedMessage
from datatorag.usecases.worker import extend_visibility

MakeQueue = Callable[..., Queue]

# > 256 KiB in UTF-8 but < 256 Ki characters: catches counting characters instead of bytes.
LARGE_BODY = json.dumps({"text": "é" * 140_000, "end": "fin"})


def receive_all(queue: Queue, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
    """Receive until ``count`` messages arrived (or the timeout passed)."""
    got: list[ReceivedMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += queue.receive(max_messages=10, wait_seconds=1)
    return got


class QueueContract:
    visibility: float = 0.3
    # SQS documents that a stale receipt "might not" delete; adapters that guarantee it say so.
    stale_delete_keeps_message: bool = True

    @pytest.fixture
    def queue(self, make_queue: MakeQueue) -> Queue:
        return make_queue(max_receives=2, visibility_timeout=self.visibility)

    def wait_out_visibility(self) -> None:
        time.sleep(self.visibility + 0.25)

    def test_is_a_queue(self, queue: Queue) -> None:
        assert isinstance(queue, Queue)
        assert queue.name

    def test_send_receive_delete(self, queue: Queue) -> None:
        message_id = queue.send('{"kind": "hello"}')
        [message] = queue.receive(wait_seconds=2)
        assert (message.message_id, message.body, message.receive_count) == (
            message_id,
            '{"kind": "hello"}',
            1,
        )
        queue.delete(message.receipt)
        assert queue.receive() == []
        assert queue.depth() == 0

    def test_unicode_body_round_trip(self, queue: Queue) -> None:
        body = json.dumps({"title": "Congés payés — 2024 ✓ 日本語"}, ensure_ascii=False)
        queue.send(body)
        [message] = queue.receive(wait_seconds=2)
        assert message.body == body

    def test_received_message_is_hidden_then_redelivered(self, queue: Queue) -> None:
        message_id = queue.send("job")
        [first] = queue.receive(wait_seconds=2)
        assert queue.receive() == []  # hidden while in flight
        self.wait_out_visibility()
        [again] = queue.receive(wait_seconds=2)
        assert again.message_id == message_id
        assert again.receive_count == 2
        assert again.receipt != first.receipt

    def test_visibility_timeout_per_receive(self, queue: Queue) -> None:
        queue.send("job")
        [_] = queue.receive(wait_seconds=2, visibility_timeout=30)
        self.wait_out_visibility()
        assert queue.receive() == []  # the longer timeout asked for on receive still holds

    def test_stale_receipt_is_ignored(self, make_queue: MakeQueue) -> None:
        queue = make_queue(max_receives=5, visibility_timeout=self.visibility)
        queue.send("job")
        [first] = queue.receive(wait_seconds=2)
        self.wait_out_visibility()
        [second] = queue.receive(wait_seconds=2)
        queue.change_visibility(first.receipt, 0)  # stale: no error
        queue.delete(first.receipt)  # stale: no error
        if not self.stale_delete_keeps_message:
            return
        assert queue.depth() == 1
        queue.change_visibility(second.receipt, 0)
        [third] = queue.receive(wait_seconds=2)
        assert (third.message_id, third.receive_count) == (second.message_id, 3)
        queue.delete(third.receipt)
        assert queue.depth() == 0

    def test_change_visibility_zero_releases(self, queue: Queue) -> None:
        queue.send("job")
        [first] = queue.receive(wait_seconds=2, visibility_timeout=30)
        queue.change_visibility(first.receipt, 0)
        [again] = queue.receive(wait_seconds=2)
        assert (again.message_id, again.receive_count) == (first.message_id, 2)

    def test_change_visibility_extends(self, queue: Queue) -> None:
        queue.send("long job")
        [message] = queue.receive(wait_seconds=2)
        queue.change_visibility(message.receipt, 30)
        self.wait_out_visibility()
        assert queue.receive() == []
        queue.delete(message.receipt)
        assert queue.depth() == 0

    def test_extend_visibility_hides_while_work_runs(self, queue: Queue) -> None:
        queue.send("long job")
        [message] = queue.receive(wait_seconds=2)
        with extend_visibility(queue, message.receipt, self.visibility):
            time.sleep(self.visibility * 2.5)
            assert queue.receive() == []
        # The heartbeat stopped with the block: the message comes back after one timeout.
        self.wait_out_visibility()
        [again] = queue.receive(wait_seconds=2)
        assert (again.message_id, again.receive_count) == (message.message_id, 2)

    def test_send_batch(self, queue: Queue) -> None:
        bodies = [json.dumps({"n": n}) for n in range(25)]
        ids = queue.send_batch(bodies)
        assert len(ids) == 25 and len(set(ids)) == 25
        got = receive_all(queue, 25)
        assert sorted(m.body for m in got) == sorted(bodies)
        assert {m.message_id for m in got} == set(ids)
        assert all(m.receive_count == 1 for m in got)
        assert queue.send_batch([]) == []

    def test_receive_respects_max_messages(self, queue: Queue) -> None:
        queue.send_batch([f"m{n}" for n in range(5)])
        got = queue.receive(max_messages=2, wait_seconds=2)
        assert 1 <= len(got) <= 2

    def test_long_poll_returns_when_a_message_arrives(self, queue: Queue) -> None:
        timer = threading.Timer(0.5, queue.send, args=("late",))
        started = time.monotonic()
        timer.start()
        try:
            got = queue.receive(wait_seconds=8)
        finally:
            timer.join()
        elapsed = time.monotonic() - started
        assert [m.body for m in got] == ["late"]
        assert 0.4 <= elapsed < 4.0

    def test_long_poll_waits_when_nothing_arrives(self, queue: Queue) -> None:
        started = time.monotonic()
        assert queue.receive(wait_seconds=1) == []
        assert time.monotonic() - started >= 0.9

    def test_dead_letter_queue_after_max_receives(self, queue: Queue) -> None:
        queue.send("poison")
        for count in (1, 2):  # max_receives=2: two deliveries, then the DLQ
            [message] = queue.receive(wait_seconds=2)
            assert message.receive_count == count
            self.wait_out_visibility()
        assert queue.receive(wait_seconds=1) == []
        [(body, reason)] = queue.dead_letters()
        assert body == "poison"
        assert "max receives" in reason
        assert queue.depth() == 0

    def test_dead_letter_now_with_reason(self, queue: Queue) -> None:
        queue.send("bad document")
        [message] = queue.receive(wait_seconds=2)
        queue.dead_letter(message, "unsupported media type: image/heic")
        assert queue.receive() == []
        assert queue.depth() == 0
        expected = [("bad document", "unsupported media type: image/heic")]
        assert queue.dead_letters() == expected
        assert queue.dead_letters() == expected  # listing does not consume

    def test_dead_letters_empty(self, queue: Queue) -> None:
        assert queue.dead_letters() == []

    def test_depth_counts_waiting_and_in_flight(self, queue: Queue) -> None:
        queue.send_batch(["a", "b", "c"])
        assert queue.depth() == 3
        [message] = queue.receive(wait_seconds=2)
        assert queue.depth() == 3
        queue.delete(message.receipt)
        assert queue.depth() == 2

    def test_large_message_round_trip(self, queue: Queue) -> None:
        message_id = queue.send(LARGE_BODY)
        [message] = queue.receive(wait_seconds=2)
        assert (message.message_id, message.body) == (message_id, LARGE_BODY)
        queue.delete(message.receipt)
        assert queue.depth() == 0

    def test_large_message_in_a_batch(self, queue: Queue) -> None:
        queue.send_batch(["small", LARGE_BODY, "small too"])
        got = receive_all(queue, 3)
        assert sorted(m.body for m in got) == sorted(["small", LARGE_BODY, "small too"])

    def test_queues_are_isolated(self, make_queue: MakeQueue) -> None:
        first = make_queue(max_receives=2, visibility_timeout=self.visibility)
        second = make_queue(max_receives=2, visibility_timeout=self.visibility)
        assert first.name != second.name
        first.send("for the first")
        assert second.receive() == []
        assert second.depth() == 0
        assert [m.body for m in first.receive(wait_seconds=2)] == ["for the first"]
