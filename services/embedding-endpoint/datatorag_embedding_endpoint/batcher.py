"""Merges concurrent requests into full forward passes.

Requests wait in two first-come queues; one worker thread owns the model. When texts are
waiting it gives more a moment (``max_wait_s``) to arrive unless a whole pass is already there,
then fills one pass of up to ``max_batch`` texts and embeds it in one call. Requests are cut
wherever the pass fills: a 20-text document next to another 20-text document makes a pass of 32,
the second document's last 8 texts open the next pass. Passes run in order, so a request's
slices come back in order and are joined into its answer when its last slice is embedded.

Small requests (queries, up to ``small_request`` texts) fill each pass before large ones
(document chunks): a lone question waits for the pass in progress, never for a document's worth
of passes queued before it. Large requests go first come, first served.

If a pass that merged several requests fails, each request's slice is embedded again on its own,
so a text that breaks the model fails only the request that sent it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import asdict, dataclass, field

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
EmbedFn = Callable[[Sequence[str]], Vectors]


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
    split_requests: int = 0  # requests whose texts were spread over more than one round


@dataclass(eq=False)
class _Request:
    number: int
    texts: Sequence[str]
    future: Future[Vectors] = field(default_factory=Future)
    taken: int = 0  # texts handed to passes so far
    parts: list[Vectors] = field(default_factory=list)  # their vectors, in order
    embedded: int = 0

    @property
    def waiting(self) -> int:
        return len(self.texts) - self.taken


@dataclass
class _Slice:
    request: _Request
    start: int
    end: int

    @property
    def texts(self) -> Sequence[str]:
        return self.request.texts[self.start : self.end]


class Batcher:
    """One worker thread running ``embed`` on passes filled from concurrent requests."""

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
        self._small: deque[_Request] = deque()
        self._large: deque[_Request] = deque()
        self._numbers = itertools.count()
        self._queued_texts = 0  # texts not yet handed to a pass
        self._changed = threading.Condition()  # guards the queues, the counters and the stats
        self._stopping = False
        self._stats = BatchStats()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="embedding-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the requests already queued, then end the worker thread."""
        if self._thread is not None:
            with self._changed:
                self._stopping = True
                self._changed.notify()
            self._thread.join(timeout)
            self._thread = None

    def stats(self) -> dict[str, int]:
        with self._changed:
            return {**asdict(self._stats), "queued_texts": self._queued_texts}

    def submit(self, texts: Sequence[str]) -> Future[Vectors]:
        """Queue ``texts``; the future resolves to their vectors, in order.

        Raises ``Overloaded`` when the queue already holds ``max_queued_texts`` texts and
        ``BatcherStopped`` when the worker is not running.
        """
        request = _Request(next(self._numbers), texts)
        with self._changed:
            if self._thread is None or self._stopping:
                raise BatcherStopped("the embedding batcher is not running")
            if self._queued_texts + len(texts) > self.max_queued_texts:
                raise Overloaded(
                    f"{self._queued_texts} texts are already waiting to be embedded "
                    f"(limit {self.max_queued_texts}); retry later"
                )
            self._stats.requests += 1
            if not texts:
                request.future.set_result(np.empty((0, 0), dtype=np.float32))
                return request.future
            self._queued_texts += len(texts)
            small = len(texts) <= self.small_request
            (self._small if small else self._large).append(request)
            self._changed.notify()
        return request.future

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return await asyncio.wrap_future(self.submit(texts))

    def embed_blocking(self, texts: Sequence[str]) -> Vectors:
        """``embed`` for callers outside an event loop (benchmarks, tests)."""
        return self.submit(texts).result()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._queued_texts and not self._stopping:
                    self._changed.wait()
                if not self._queued_texts:
                    return  # stopping, and nothing left to embed
                self._gather()
                slices = self._fill()
            if slices:
                self._process(slices)

    def _gather(self) -> None:
        """Give more texts up to ``max_wait_s`` to arrive, unless a full pass is waiting."""
        deadline = time.monotonic() + self.max_wait_s
        while self._queued_texts < self.max_batch and not self._stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._changed.wait(left)

    def _fill(self) -> list[_Slice]:
        """Up to ``max_batch`` waiting texts, small requests first, cutting requests as needed."""
        slices: list[_Slice] = []
        room = self.max_batch
        for waiting in (self._small, self._large):
            while waiting and room:
                request = waiting[0]
                if request.future.cancelled():  # its client went away: skip what is left
                    self._drop(waiting.popleft())
                    continue
                end = request.taken + min(room, request.waiting)
                slices.append(_Slice(request, request.taken, end))
                room -= end - request.taken
                self._queued_texts -= end - request.taken
                request.taken = end
                if not request.waiting:
                    waiting.popleft()
        return slices

    def _drop(self, request: _Request) -> None:
        self._queued_texts -= request.waiting
        request.taken = len(request.texts)

    def _process(self, slices: list[_Slice]) -> None:
        texts = [text for piece in slices for text in piece.texts]
        try:
            vectors = self._embed(texts)
        except Exception as exc:
            if len(slices) > 1:
                log.warning("a pass of %d texts failed; embedding each request alone", len(texts))
                for piece in slices:
                    self._process([piece])
                return
            log.exception("embedding a batch of %d texts failed", len(texts))
            self._fail(slices[0].request, exc)
            return
        self._count(slices, len(texts))
        offset = 0
        for piece in slices:
            size = piece.end - piece.start
            self._deliver(piece.request, vectors[offset : offset + size])
            offset += size

    def _deliver(self, request: _Request, vectors: Vectors) -> None:
        if request.future.done():  # cancelled, or failed by an earlier slice
            return
        request.parts.append(vectors)
        request.embedded += len(vectors)
        if request.embedded == len(request.texts):
            parts = request.parts
            _settle(request.future, parts[0] if len(parts) == 1 else np.concatenate(parts))

    def _fail(self, request: _Request, exc: Exception) -> None:
        """Fail ``request`` with ``exc``; its texts not yet taken are dropped."""
        with self._changed:
            for waiting in (self._small, self._large):
                if request in waiting:
                    waiting.remove(request)
                    self._drop(request)
        _settle(request.future, exc)

    def _count(self, slices: list[_Slice], n_texts: int) -> None:
        with self._changed:
            stats = self._stats
            stats.texts += n_texts
            stats.batches += 1
            stats.forward_passes += self._passes(n_texts)
            stats.largest_batch = max(stats.largest_batch, n_texts)
            stats.max_requests_per_batch = max(stats.max_requests_per_batch, len(slices))
            stats.split_requests += sum(
                1 for s in slices if s.start == 0 and s.end < len(s.request.texts)
            )


def _settle(future: Future[Vectors], outcome: Vectors | Exception) -> None:
    """Resolve ``future`` unless its caller cancelled it meanwhile."""
    try:
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        pass
