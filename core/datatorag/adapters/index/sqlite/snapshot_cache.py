"""Each tenant's latest snapshot in this process, shared by its threads."""

from __future__ import annotations

import sqlite3
import threading

from datatorag.adapters.index.sqlite.snapshot import Snapshot, catch_up, empty_snapshot
from datatorag.adapters.index.sqlite.store import meta


class _Slot:
    """One tenant's snapshot; its lock lets one thread load while others wait for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snapshot: Snapshot | None = None


class SnapshotCache:
    """The snapshot of every tenant this process has searched."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}

    def latest(
        self, tenant: str, conn: sqlite3.Connection, epoch: int, generation: int
    ) -> Snapshot | None:
        """The snapshot for ``generation`` (read in the caller's read transaction on ``conn``),
        or None when a newer one is already loaded: then the caller begins again."""
        slot = self._slot(tenant)
        known = slot.snapshot
        if known is not None and known.epoch == epoch and known.generation >= generation:
            return known if known.generation == generation else None
        with slot.lock:
            known = slot.snapshot
            if known is not None and known.epoch == epoch and known.generation >= generation:
                return known if known.generation == generation else None
            if (
                known is None
                or known.epoch != epoch  # the file was recreated since
                or known.generation < meta(conn, "tombstone_floor")  # fell behind the log
            ):
                known = empty_snapshot(epoch)  # load everything
            slot.snapshot = catch_up(known, conn, generation)
            return slot.snapshot

    def peek(self, tenant: str) -> Snapshot | None:
        """The tenant's snapshot as loaded, without catching up (None if never loaded)."""
        with self._lock:
            slot = self._slots.get(tenant)
        return slot.snapshot if slot else None

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()

    def _slot(self, tenant: str) -> _Slot:
        with self._lock:
            return self._slots.setdefault(tenant, _Slot())
