"""The shared worker loop's failure handling, over the real embedded queue."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from structlog.testing import capture_logs

from datatorag.adapters.queue.sqlite import SqliteQueue
from datatorag.domain.errors import DocumentRejected, RetryableError
from datatorag.domain.messages import DocumentRemoved, Message, encode
from datatorag.usecases.worker import Worker

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self, outcome: Exception | None = None) -> None:
        self.outcome = outcome
        self.handled: list[Message] = []
        self.failures: list[tuple[str, str]] = []

    def handle(self, message: Message) -> None:
        self.handled.append(message)
        if self.outcome:
            raise self.outcome

    def record_failure(self, message: Message, reason: str) -> None:
        self.failures.append((message.doc_id, reason))


@pytest.fixture
def queue(tmp_path):
    # Redrive one delivery after the workers' limit of 2, as wiring.queue does.
    return SqliteQueue(tmp_path / "q.db", "documents", max_receives=3, visibility_timeout=30)


def make_worker(queue, recorder):
    return Worker(queue, recorder.handle, recorder.record_failure, max_receives=2, retry_delay_s=0)


def deliver(queue, worker):
    for received in queue.receive(max_messages=1):
        worker.process(received)


def send(queue, doc_id="d1"):
    queue.send(encode(DocumentRemoved(tenant="t", doc_id=doc_id)))


def test_success_deletes_the_message(queue):
    recorder = Recorder()
    send(queue)
    deliver(queue, make_worker(queue, recorder))
    assert len(recorder.handled) == 1 and queue.depth() == 0 and not recorder.failures


def test_a_permanent_failure_is_recorded_and_dead_lettered_at_once(queue):
    recorder = Recorder(DocumentRejected("the PDF is encrypted"))
    send(queue)
    deliver(queue, make_worker(queue, recorder))
    assert recorder.failures == [("d1", "the PDF is encrypted")]
    assert queue.depth() == 0
    assert [reason for _, reason in queue.dead_letters()] == ["the PDF is encrypted"]


def test_a_transient_failure_is_retried_then_given_up_with_its_reason(queue):
    recorder = Recorder(RetryableError("endpoint busy"))
    worker = make_worker(queue, recorder)
    send(queue)
    deliver(queue, worker)
    assert not recorder.failures and queue.depth() == 1  # released for another try
    deliver(queue, worker)
    assert len(recorder.handled) == 2
    assert recorder.failures == [("d1", "gave up after 2 attempts: endpoint busy")]
    assert len(queue.dead_letters()) == 1


def test_a_message_that_crashed_the_worker_is_failed_on_its_next_delivery(queue):
    recorder = Recorder()
    worker = make_worker(queue, recorder)
    send(queue)
    for _ in range(2):  # two deliveries that "crashed": received, never deleted
        [received] = queue.receive(max_messages=1)
        queue.change_visibility(received.receipt, 0)
    deliver(queue, worker)
    assert recorder.handled == []  # not handed to the handler a third time
    assert recorder.failures == [("d1", "gave up after 2 attempts")]


def test_an_undecodable_message_goes_to_the_dead_letter_queue(queue):
    recorder = Recorder()
    queue.send("{not json")
    deliver(queue, make_worker(queue, recorder))
    assert recorder.handled == [] and queue.depth() == 0
    assert "unreadable queue message" in queue.dead_letters()[0][1]


def test_other_messages_are_not_blocked_by_a_failing_one(queue):
    recorder = Recorder()
    worker = make_worker(queue, recorder)
    queue.send("{not json")
    send(queue, "d2")
    deliver(queue, worker)
    deliver(queue, worker)
    assert [m.doc_id for m in recorder.handled] == ["d2"]


class FlakyQueue:
    """Fake: the real embedded queue, but the next ``times`` calls of ``method`` fail, as an SQS
    endpoint does during a network blip (which cannot be staged here)."""

    def __init__(self, queue: SqliteQueue, method: str, times: int) -> None:
        self.queue, self.method, self.times = queue, method, times
        self.name = queue.name

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.queue, name)
        if name != self.method:
            return real

        def flaky(*args: Any, **kwargs: Any) -> Any:
            if self.times > 0:
                self.times -= 1
                raise ConnectionError("Could not connect to the endpoint URL")
            return real(*args, **kwargs)

        return flaky


@contextmanager
def running(worker: Worker) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        worker.stop.set()
        thread.join(timeout=5)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def flaky_worker(queue: FlakyQueue, recorder: Recorder, **options: float) -> Worker:
    return Worker(
        queue,  # type: ignore[arg-type]
        recorder.handle,
        recorder.record_failure,
        max_receives=2,
        retry_delay_s=0,
        poll_wait_s=0.05,
        **{"error_backoff_s": 0.01, **options},
    )


def test_a_queue_error_is_logged_and_the_worker_goes_on(queue):
    recorder = Recorder()
    worker = flaky_worker(FlakyQueue(queue, "receive", times=4), recorder, max_error_backoff_s=0.03)
    for doc_id in ("d1", "d2"):
        send(queue, doc_id)
    with capture_logs() as logs, running(worker) as thread:
        assert wait_for(lambda: len(recorder.handled) == 2)
        assert thread.is_alive()
    assert queue.depth() == 0 and not recorder.failures
    errors = [entry for entry in logs if entry["event"] == "worker.error"]
    assert [entry["backoff_s"] for entry in errors] == [0.01, 0.02, 0.03, 0.03]  # capped
    assert errors[0]["log_level"] == "error" and errors[0]["exc_info"] is True


def test_a_failed_delete_leaves_the_message_to_be_handled_again(tmp_path):
    # At-least-once: the handled message was not deleted, so it comes back (handlers are
    # idempotent) rather than being lost or ending the worker.
    real = SqliteQueue(tmp_path / "q.db", "documents", max_receives=3, visibility_timeout=0.3)
    recorder = Recorder()
    worker = flaky_worker(FlakyQueue(real, "delete", times=1), recorder)
    worker.visibility_timeout_s = 0.3
    send(real)
    with running(worker):
        assert wait_for(lambda: real.depth() == 0)
    assert [m.doc_id for m in recorder.handled] == ["d1", "d1"]
    assert not recorder.failures and real.dead_letters() == []


def test_a_worker_backing_off_stops_promptly(queue):
    recorder = Recorder()
    worker = flaky_worker(FlakyQueue(queue, "receive", times=10**6), recorder, error_backoff_s=60)
    with running(worker) as thread:
        time.sleep(0.2)
        assert thread.is_alive()  # backing off, not dead
        started = time.monotonic()
        worker.stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive() and time.monotonic() - started < 1


def test_sigterm_that_lands_on_a_worker_thread_still_stops_the_worker(queue):
    """The kernel may hand a process's SIGTERM to any thread; Python runs the handler on the
    main thread only, so the main thread must not sit in an untimed join (a stack's supervisor
    once died and left a processor running for good)."""
    recorder = Recorder()
    worker = Worker(
        queue, recorder.handle, recorder.record_failure, max_receives=2, poll_wait_s=0.1
    )
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    worker.install_signal_handlers()
    stuck = threading.Event()

    def signal_a_worker_thread() -> None:
        assert wait_for(lambda: any(t.name.endswith("(_loop)") for t in threading.enumerate()))
        loop = next(t for t in threading.enumerate() if t.name.endswith("(_loop)"))
        assert loop.ident is not None
        signal.pthread_kill(loop.ident, signal.SIGTERM)
        if not worker.stop.wait(10):  # never stopped: end the run so the test can fail
            stuck.set()
            worker.stop.set()

    sender = threading.Thread(target=signal_a_worker_thread)
    try:
        sender.start()
        worker.run(concurrency=2)
        sender.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert not stuck.is_set(), "SIGTERM on a worker thread did not stop the worker"
