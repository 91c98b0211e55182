"""Size-bounded batching: consecutive groups under a count and a byte limit."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def bounded_batches(
    items: Iterable[T], size_of: Callable[[T], int], *, max_count: int, max_bytes: int
) -> Iterator[list[T]]:
    """``items`` in order, grouped so that no group holds over ``max_count`` items or over
    ``max_bytes`` in total. An item over ``max_bytes`` on its own travels alone: the receiver
    decides whether to refuse it."""
    if max_count < 1:
        raise ValueError("max_count must be at least 1")
    batch: list[T] = []
    total = 0
    for item in items:
        size = size_of(item)
        if batch and (len(batch) == max_count or total + size > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += size
    if batch:
        yield batch
