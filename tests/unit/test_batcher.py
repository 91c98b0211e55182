"""The embedding endpoint's batcher on its own: how it fills forward passes from requests.

The model is replaced by ``RecordingEmbed``, a plain function that records each pass and gives
every text a vector holding the number at its end, so each result can be traced to its input.
What is under test is the real ``Batcher``: the packing, the order, the fairness, the failures.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError, Future

import numpy as np
import pytest

from datatorag_embedding_endpoint.batcher import Batcher, BatcherStopped, Overloaded

pytestmark = pytest.mark.unit


class RecordingEmbed:
    """Records each pass; holds the worker inside a pass until ``release`` is set."""

    def __init__(self, poison: str = "poison") -> None:
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.poison = poison

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        self.entered.set()
        assert self.release.wait(10)
        if any(self.poison in t for t in texts):
            raise RuntimeError("the model cannot embed this text")
        return np.array([[float(t.split()[-1]), 1.0] for t in texts], dtype=np.float32)

    def hold(self, batcher: Batcher) -> Future[np.ndarray]:
        """Keep the worker busy on a pass of one text while the test queues requests."""
        self.release.clear()
        self.entered.clear()
        blocker = batcher.submit(["blocker -1"])
        assert self.entered.wait(5)
        return blocker


@pytest.fixture
def recording() -> Iterator[tuple[RecordingEmbed, Batcher]]:
    embed = RecordingEmbed()
    batcher = Batcher(embed, max_batch=8, max_wait_s=0.05, max_queued_texts=64)
    batcher.start()
    yield embed, batcher
    embed.release.set()
    batcher.stop()


def numbers(future: Future[np.ndarray]) -> list[float]:
    return list(future.result(5)[:, 0])


def test_requests_are_cut_to_fill_every_pass(recording: tuple[RecordingEmbed, Batcher]) -> None:
    embed, batcher = recording
    blocker = embed.hold(batcher)
    docs = [batcher.submit([f"doc{d} {d * 100 + i}" for i in range(5)]) for d in range(3)]
    embed.release.set()
    blocker.result(5)
    for d, doc in enumerate(docs):
        assert numbers(doc) == [d * 100 + i for i in range(5)]
    # Whole jobs only would give passes of 5, 5, 5; cut, 15 texts make one full pass and 7.
    assert [len(batch) for batch in embed.batches] == [1, 8, 7]
    assert embed.batches[1][5:] == ["doc1 100", "doc1 101", "doc1 102"]
    stats = batcher.stats()
    assert stats["split_requests"] == 1
    assert stats["max_requests_per_batch"] == 2
    assert stats["texts"] == 16
    assert stats["queued_texts"] == 0


def test_many_small_requests_share_a_pass_in_order(
    recording: tuple[RecordingEmbed, Batcher],
) -> None:
    embed, batcher = recording
    blocker = embed.hold(batcher)
    queued = [batcher.submit([f"text {i}", f"text {i + 100}"]) for i in range(1, 7)]
    embed.release.set()
    assert numbers(blocker) == [-1]
    for i, future in enumerate(queued, start=1):
        assert numbers(future) == [i, i + 100]
    assert [len(batch) for batch in embed.batches] == [1, 8, 4]
    assert batcher.stats()["max_requests_per_batch"] == 4


def test_a_question_goes_ahead_of_a_queued_document_and_the_rest_fills_its_pass(
    recording: tuple[RecordingEmbed, Batcher],
) -> None:
    embed, batcher = recording
    embed.hold(batcher)
    document = batcher.submit([f"chunk {i}" for i in range(20)])
    query = batcher.submit(["query 99"])
    embed.release.set()
    assert numbers(document) == list(range(20))
    assert numbers(query) == [99]
    assert embed.batches[1] == ["query 99", *(f"chunk {i}" for i in range(7))]
    assert [len(batch) for batch in embed.batches] == [1, 8, 8, 5]


def test_a_huge_request_does_not_starve_a_question_arriving_midway() -> None:
    embed = RecordingEmbed()
    batcher = Batcher(embed, max_batch=8, max_wait_s=0.0)
    batcher.start()
    try:
        embed.release.clear()
        huge = batcher.submit([f"chunk {i}" for i in range(64)])  # eight passes
        assert embed.entered.wait(5)
        query = batcher.submit(["query 7"])
        embed.release.set()
        assert numbers(query) == [7]
        assert numbers(huge) == list(range(64))
        # The question runs in the pass after the one in progress, not after the eight.
        assert embed.batches[1][0] == "query 7"
    finally:
        embed.release.set()
        batcher.stop()


def test_a_failing_text_fails_only_its_own_request(
    recording: tuple[RecordingEmbed, Batcher],
) -> None:
    embed, batcher = recording
    embed.hold(batcher)
    good = batcher.submit(["a 1", "a 2", "a 3"])
    bad = batcher.submit(["b 4", "poison 5", "b 6"])
    other = batcher.submit(["c 7", "c 8"])
    embed.release.set()
    with pytest.raises(RuntimeError, match="cannot embed"):
        bad.result(5)
    assert numbers(good) == [1, 2, 3]
    assert numbers(other) == [7, 8]


def test_a_request_that_fails_midway_loses_its_remaining_texts_not_others(
    recording: tuple[RecordingEmbed, Batcher],
) -> None:
    embed, batcher = recording
    embed.hold(batcher)
    doomed = batcher.submit(["poison 0", *(f"rest {i}" for i in range(1, 12))])  # 8 + 4
    after = batcher.submit(["d 20", "d 21", "d 22", "d 23", "d 24"])
    embed.release.set()
    with pytest.raises(RuntimeError, match="cannot embed"):
        doomed.result(5)
    assert numbers(after) == [20, 21, 22, 23, 24]
    embedded = [t for batch in embed.batches for t in batch]
    assert "rest 8" not in embedded  # its second slice was never embedded
    assert batcher.stats()["queued_texts"] == 0


def test_a_cancelled_request_is_skipped(recording: tuple[RecordingEmbed, Batcher]) -> None:
    embed, batcher = recording
    embed.hold(batcher)
    gone = batcher.submit([f"gone {i}" for i in range(12)])
    kept = batcher.submit(["kept 1", "kept 2"])
    assert gone.cancel()
    embed.release.set()
    assert numbers(kept) == [1, 2]
    assert not any(t.startswith("gone") for batch in embed.batches for t in batch)
    with pytest.raises(CancelledError):
        gone.result(0)
    assert batcher.stats()["queued_texts"] == 0


def test_a_pass_waits_briefly_for_more_texts_but_never_when_full() -> None:
    embed = RecordingEmbed()
    batcher = Batcher(embed, max_batch=4, max_wait_s=2.0)
    batcher.start()
    try:
        first, second = batcher.submit(["x 1"]), batcher.submit(["y 2"])
        assert numbers(first) == [1] and numbers(second) == [2]
        assert embed.batches == [["x 1", "y 2"]]  # gathered into one pass
        slow = Batcher(embed, max_batch=4, max_wait_s=60.0)
        slow.start()
        try:  # a full pass is there: no waiting for the 60 s window
            assert numbers(slow.submit(["a 1", "b 2", "c 3", "d 4"])) == [1, 2, 3, 4]
        finally:
            slow.stop()
    finally:
        batcher.stop()


def test_refuses_work_past_its_queue_limit(recording: tuple[RecordingEmbed, Batcher]) -> None:
    embed, batcher = recording
    embed.hold(batcher)
    batcher.submit([f"t {i}" for i in range(60)])
    with pytest.raises(Overloaded, match="retry later"):
        batcher.submit([f"t {i}" for i in range(10)])


def test_stop_finishes_what_is_queued_and_refuses_the_rest() -> None:
    embed = RecordingEmbed()
    batcher = Batcher(embed, max_batch=8, max_wait_s=0.05)
    batcher.start()
    embed.hold(batcher)
    queued = batcher.submit([f"q {i}" for i in range(20)])
    stopper = threading.Thread(target=batcher.stop)
    stopper.start()
    embed.release.set()
    stopper.join(10)
    assert numbers(queued) == list(range(20))
    with pytest.raises(BatcherStopped):
        batcher.submit(["late 1"])


def test_an_empty_request_needs_no_pass(recording: tuple[RecordingEmbed, Batcher]) -> None:
    embed, batcher = recording
    assert batcher.embed_blocking([]).shape == (0, 0)
    assert embed.batches == []
