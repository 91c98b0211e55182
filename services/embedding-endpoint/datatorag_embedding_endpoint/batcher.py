"""Merges concurrent requests into shared forward passes.

Requests go on a queue; one worker thread owns the model. It takes the first waiting job, then
keeps taking jobs for up to ``max_wait_s`` or until ``max_batch`` texts are gathered, and embeds
them in one call: many single-query requests arriving together share one forward pass instead of
paying one each, and while a batch runs the next one fills up.

A request with more than ``max_batch`` texts is cut into jobs of ``max_batch``, and small requests
(queries, up to ``small_request`` texts) go ahead of large ones (document chunks): a query waits
for the forward pass in progress, not for a whole document's worth of passes queued before it.
"""

from __future__ import annotations

import asyncio
import itertools
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

_SMALL, _LARGE, _STOP = 0, 1, 2  # queue priorities: lower goes first


class Overloaded(Exception):
    """Too many texts are already waiting; the caller should retry later."""


class BatcherStopped(Exception):
    """The batcher is not running, or stopped before it could embed the request."""


@dataclass
class BatchStats:
    requests: int = 0  # requests accepted
    texts: int = 0  # texts embedded
    batches: int = 0  # worker rounds (one model call each)
    forward_passes: int = 0  # model forward passes
    largest_batch: int = 0  # most texts in one round
    max_requests_per_batch: int = 0  # most distinct requests merged into one round


@dataclass
class _Job:
    request: int  # id of the request this slice of texts belongs to
    texts: Sequence[str]
    future: Future[Vectors]


_Item = tuple[int, int, _Job | None]  # (priority, arrival order, job; None means stop)


class Batcher:
    """One worker thread running ``embed`` on batches merged from concurrent requests."""

    def __init__(
        self,
        embed: EmbedFn,
        *,
        max_batch: int = 32,
        max_wait_s: float = 0.002,
        max_queued_texts: int = 8192,
        small_request: int = 4,
        forward_passes: Callable[[int], int] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._embed = embed
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queued_texts = max_queued_texts
        self.small_request = small_request
        self._passes = forward_passes or (lambda n: -(-n // max_batch))
        self._queue: queue.PriorityQueue[_Item] = queue.PriorityQueue()
        self._order = itertools.count()
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
            self._queue.put((_STOP, next(self._order), None))
            self._thread.join(timeout)
            self._thread = None

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {**asdict(self._stats), "queued_texts": self._queued_texts}

    def submit(self, texts: Sequence[str]) -> list[Future[Vectors]]:
        """Queue ``texts``; the futures resolve to their vectors, slice by slice, in order.

        Raises ``Overloaded`` when the queue already holds ``max_queued_texts`` texts and
        ``BatcherStopped`` when the worker is not running.
        """
        if self._thread is None:
            raise BatcherStopped("the embedding batcher is not running")
        with self._lock:
            if self._queued_texts + len(texts) > self.max_queued_texts:
                raise Overloaded(
                    f"{self._queued_texts} texts are already waiting to be embedded "
                    f"(limit {self.max_queued_texts}); retry later"
                )
            self._queued_texts += len(texts)
            self._stats.requests += 1
        request = next(self._order)
        priority = _SMALL if len(texts) <= self.small_request else _LARGE
        futures: list[Future[Vectors]] = []
        for start in range(0, len(texts), self.max_batch):
            job = _Job(request, texts[start : start + self.max_batch], Future())
            self._queue.put((priority, next(self._order), job))
            futures.append(job.future)
        return futures

    async def embed(self, texts: Sequence[str]) -> Vectors:
        parts = await asyncio.gather(*(asyncio.wrap_future(f) for f in self.submit(texts)))
        return _join(parts)

    def embed_blocking(self, texts: Sequence[str]) -> Vectors:
        """``embed`` for callers outside an event loop (benchmarks, tests)."""
        return _join([future.result() for future in self.submit(texts)])

    def _run(self) -> None:
        while True:
            _, _, first = self._queue.get()
            if first is None:
                break
            jobs, stop = self._gather(first)
            self._process(jobs)
            if stop:
                break
        self._fail_waiting()

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` plus the jobs that arrive within ``max_wait_s``, up to ``max_batch`` texts.

        A job that does not fit goes back on the queue, where it keeps its place. Returns the
        jobs and whether a stop request was seen.
        """
        jobs, count = [first], len(first.texts)
        deadline = time.monotonic() + self.max_wait_s
        while count < self.max_batch:
            try:
                item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                break
            job = item[2]
            if job is None:
                return jobs, True
            if count + len(job.texts) > self.max_batch:
                self._queue.put(item)
                break
            jobs.append(job)
            count += len(job.texts)
        return jobs, False

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
            stats.texts += n_texts
            stats.batches += 1
            stats.forward_passes += self._passes(n_texts)
            stats.largest_batch = max(stats.largest_batch, n_texts)
            requests = len({job.request for job in jobs})
            stats.max_requests_per_batch = max(stats.max_requests_per_batch, requests)

    def _fail_waiting(self) -> None:
        """Jobs still queued when the worker stops get an error instead of waiting forever."""
        while True:
            try:
                _, _, job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(BatcherStopped("the embedding endpoint is shutting down"))


def _join(parts: Sequence[Vectors]) -> Vectors:
    if not parts:
        return np.empty((0, 0), dtype=np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
