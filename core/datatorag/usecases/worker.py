"""The queue-consuming loop the processor and the embedder-client share.

At-least-once: a message is deleted only after its handler succeeded, so a crash anywhere
leaves it to be delivered again; handlers are idempotent. Failures:

- ``PermanentError``: the document is marked failed with the reason; the message is
  dead-lettered at once.
- anything else: the message is released for another try after a back-off; once it has been
  delivered ``max_receives`` times the document is marked failed and the message dead-lettered.
- a message that crashed the worker outright comes back with a higher receive count; the
  queue's redrive limit is one above ``max_receives`` so the worker sees it, marks it failed
  and dead-letters it.
- the queue itself failing (receive, delete, change_visibility, dead_letter) or the failure
  record failing: logged, and the loop backs off briefly and goes on; a message it could not
  delete comes back after its visibility timeout.

SIGTERM (ECS stopping a task) sets the stop event: the message in hand is finished, then the
loop ends.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog

from datatorag.domain.errors import PermanentError
from datatorag.domain.messages import Message, decode
from datatorag.log import get_logger
from datatorag.ports import Queue, ReceivedMessage

Handler = Callable[[Message], None]
FailureRecorder = Callable[[Message, str], None]

log = get_logger(__name__)


def ran_out_of_retries(attempts: int, error: object) -> str:
    """The failure reason of a retryable error that outlasted the retries (an outage, most
    likely: ``is_transient_failure`` tells a later sync to try the document again)."""
    return f"gave up after {attempts} attempts: {error}"


def is_transient_failure(reason: str | None) -> bool:
    return bool(reason and _RAN_OUT_OF_RETRIES.match(reason))


_RAN_OUT_OF_RETRIES = re.compile(r"gave up after \d+ attempts: ")


@contextmanager
def extend_visibility(
    queue: Queue, receipt: str, timeout_seconds: float, *, interval_seconds: float | None = None
) -> Iterator[None]:
    """Keep a message hidden while the block runs (long jobs), for any Queue adapter.

    A background thread sets the visibility to ``timeout_seconds`` every ``interval_seconds``
    (default: a third of it), so a crashed worker's message still comes back soon. A failed
    heartbeat is logged and retried at the next interval rather than breaking the job.
    """
    interval = timeout_seconds / 3 if interval_seconds is None else interval_seconds
    if interval <= 0 or interval >= timeout_seconds:
        raise ValueError("interval_seconds must be positive and shorter than timeout_seconds")
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(interval):
            try:
                queue.change_visibility(receipt, timeout_seconds)
            except Exception:  # keep beating; the job itself decides its outcome
                log.warning("visibility.extend_failed", queue=queue.name, exc_info=True)

    thread = threading.Thread(target=heartbeat, name=f"extend-visibility-{queue.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Worker:
    def __init__(
        self,
        queue: Queue,
        handle: Handler,
        record_failure: FailureRecorder,
        *,
        max_receives: int,
        visibility_timeout_s: float = 120.0,
        poll_wait_s: float = 1.0,
        retry_delay_s: float = 5.0,
        error_backoff_s: float = 1.0,
        max_error_backoff_s: float = 10.0,
    ) -> None:
        self.queue = queue
        self.handle = handle
        self.record_failure = record_failure
        self.max_receives = max_receives
        self.visibility_timeout_s = visibility_timeout_s
        self.poll_wait_s = poll_wait_s
        self.retry_delay_s = retry_delay_s
        self.error_backoff_s = error_backoff_s
        self.max_error_backoff_s = max_error_backoff_s
        self.stop = threading.Event()

    def run(self, concurrency: int = 1) -> None:
        """Consume until stopped; ``concurrency`` threads each handle one message at a time."""
        threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        # Joined with a timeout: Python runs signal handlers on the main thread only, and when
        # the kernel hands SIGTERM to a worker thread, an untimed join is never woken to run
        # the handler that stops the workers (a stopped supervisor then left a service behind).
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(timeout=0.5)

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())

    def _loop(self) -> None:
        backoff = self.error_backoff_s  # doubles while the errors go on, up to the cap
        while not self.stop.is_set():
            try:
                for received in self.queue.receive(max_messages=1, wait_seconds=self.poll_wait_s):
                    self.process(received)
            except Exception:  # a queue or index blip must not end the worker
                log.error("worker.error", backoff_s=backoff, queue=self.queue.name, exc_info=True)
                self.stop.wait(backoff)  # returns at once when the worker is stopped
                backoff = min(backoff * 2, self.max_error_backoff_s)
            else:
                backoff = self.error_backoff_s

    def process(self, received: ReceivedMessage) -> None:
        try:
            message = decode(received.body)
        except PermanentError as err:
            log.warning("message.undecodable", reason=str(err))
            self.queue.dead_letter(received, str(err))
            return
        with structlog.contextvars.bound_contextvars(
            tenant=message.tenant,
            doc_id=message.doc_id,
            kind=message.kind,
            receive_count=received.receive_count,
        ):
            self._process(received, message)

    def _process(self, received: ReceivedMessage, message: Message) -> None:
        if received.receive_count > self.max_receives:
            self._give_up(received, message, f"gave up after {self.max_receives} attempts")
            return
        try:
            # A large document may take longer than the visibility timeout: keep it hidden
            # while we work, so no second worker starts on it (a crash still frees it soon).
            with extend_visibility(self.queue, received.receipt, self.visibility_timeout_s):
                self.handle(message)
        except PermanentError as err:
            self._give_up(received, message, str(err))
            return
        except Exception as err:
            log.warning("message.retry", error=repr(err), exc_info=True)
            if received.receive_count >= self.max_receives:
                self._give_up(received, message, ran_out_of_retries(self.max_receives, err))
            else:
                delay = self.retry_delay_s * 2 ** (received.receive_count - 1)
                self.queue.change_visibility(received.receipt, delay)
            return
        self.queue.delete(received.receipt)
        log.info("message.done")

    def _give_up(self, received: ReceivedMessage, message: Message, reason: str) -> None:
        log.warning("message.failed", reason=reason)
        self.record_failure(message, reason)
        self.queue.dead_letter(received, reason)
