"""Merges concurrent requests into shared forward passes.

Requests go on a queue; one worker thread owns the model. It takes the first waiting request,
then keeps taking requests for up to ``max_wait_s`` or until ``max_batch`` texts are gathered,
and embeds them all in one call. Many single-query requests arriving together therefore share
one forward pass instead of paying one each; while a batch runs, the next one fills up.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
EmbedFn = Callable[[Sequence[str]], Vectors]


class Overloaded(Exception):
    """Too many texts are already waiting; the caller should retry later."""


class BatcherStopped(Exception):
    """The batcher was stopped before it could embed the request."""


@dataclass
class BatchStats:
    requests: int = 0  # requests embedded
    texts: int = 0  # texts embedded
    batches: int = 0  # worker rounds (one model call each)
    forward_passes: int = 0  # model forward passes (a round over ``max_batch`` texts makes several)
    largest_batch: int = 0  # most texts in one round
    max_requests_per_batch: int = 0  # most requests merged into one round


@dataclass
class _Job:
    texts: Sequence[str]
    future: Future[Vectors]


_STOP = object()


class Batcher:
    """One worker thread running ``embed`` on batches merged from concurrent requests."""

    def __init__(
        self,
        embed: EmbedFn,
        *,
        max_batch: int = 32,
        max_wait_s: float = 0.002,
        max_queued_texts: int = 8192,
        forward_passes: Callable[[int], int] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._embed = embed
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queued_texts = max_queued_texts
        self._passes = forward_passes or (lambda n: -(-n // max_batch))
        self._queue: queue.Queue[_Job | object] = queue.Queue()
        self._queued_texts = 0
        self._lock = threading.Lock()
        self._stats = BatchStats()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="embedding-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the jobs already queued, then end the worker thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {**asdict(self._stats), "queued_texts": self._queued_texts}

    def submit(self, texts: Sequence[str]) -> Future[Vectors]:
        """Queue ``texts``; the future resolves to their vectors, in order."""
        future: Future[Vectors] = Future()
        if self._thread is None:
            future.set_exception(BatcherStopped("the embedding batcher is not running"))
            return future
        with self._lock:
            if self._queued_texts + len(texts) > self.max_queued_texts:
                raise Overloaded(
                    f"{self._queued_texts} texts are already waiting to be embedded "
                    f"(limit {self.max_queued_texts}); retry later"
                )
            self._queued_texts += len(texts)
        self._queue.put(_Job(texts, future))
        return future

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return await asyncio.wrap_future(self.submit(texts))

    def _run(self) -> None:
        carry: _Job | None = None
        while True:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if first is _STOP:
                break
            assert isinstance(first, _Job)
            jobs, carry, stop = self._gather(first)
            self._process(jobs)
            if stop:
                break
        self._fail_waiting()

    def _gather(self, first: _Job) -> tuple[list[_Job], _Job | None, bool]:
        """``first`` plus the jobs that arrive within ``max_wait_s``, up to ``max_batch`` texts.

        Returns the jobs, a job that did not fit (it opens the next batch), and whether a stop
        request was seen.
        """
        jobs, count = [first], len(first.texts)
        deadline = time.monotonic() + self.max_wait_s
        while count < self.max_batch:
            try:
                item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                break
            if item is _STOP:
                return jobs, None, True
            assert isinstance(item, _Job)
            if count + len(item.texts) > self.max_batch:
                return jobs, item, False
            jobs.append(item)
            count += len(item.texts)
        return jobs, None, False

    def _process(self, jobs: list[_Job]) -> None:
        with self._lock:
            self._queued_texts -= sum(len(job.texts) for job in jobs)
        # A request whose client went away was cancelled: skip its texts.
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        texts = [text for job in live for text in job.texts]
        if not texts:
            for job in live:
                job.future.set_result(np.empty((0, 0), dtype=np.float32))
            return
        try:
            vectors = self._embed(texts)
        except Exception as exc:
            log.exception("embedding a batch of %d texts failed", len(texts))
            for job in live:
                job.future.set_exception(exc)
            return
        self._count(live, len(texts))
        start = 0
        for job in live:
            job.future.set_result(vectors[start : start + len(job.texts)])
            start += len(job.texts)

    def _count(self, jobs: list[_Job], n_texts: int) -> None:
        with self._lock:
            stats = self._stats
            stats.requests += len(jobs)
            stats.texts += n_texts
            stats.batches += 1
            stats.forward_passes += self._passes(n_texts)
            stats.largest_batch = max(stats.largest_batch, n_texts)
            stats.max_requests_per_batch = max(stats.max_requests_per_batch, len(jobs))

    def _fail_waiting(self) -> None:
        """Jobs queued after the stop request get an error instead of waiting forever."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Job) and item.future.set_running_or_notify_cancel():
                item.future.set_exception(BatcherStopped("the embedding endpoint is shutting down"))
