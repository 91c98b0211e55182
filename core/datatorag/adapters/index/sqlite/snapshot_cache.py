"""Each tenant's latest snapshot in this process, shared by its threads, within a memory budget.

Past the budget the least recently searched tenants' snapshots are dropped (whole: a tenant is
in memory or not) and reloaded from their file when searched again. A thread still ranking a
dropped snapshot keeps its reference; snapshots are immutable, so nothing changes under it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass

from datatorag.adapters.index.sqlite.snapshot import Snapshot, catch_up, empty_snapshot
from datatorag.adapters.index.sqlite.store import meta

DEFAULT_MEMORY_BYTES = 512 * 2**20  # DATATORAG_SNAPSHOT_MEMORY_MB


@dataclass(frozen=True)
class CacheStats:
    tenants: int  # tenants in memory
    nbytes: int  # their snapshots' estimated memory
    loads: int  # full loads from a file (a tenant's first search, or after eviction)
    evictions: int
    graphs: int = 0  # of those tenants, how many have an ANN graph (counted in nbytes)


class _Slot:
    """One tenant's snapshot; its lock lets one thread load while others wait for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snapshot: Snapshot | None = None


class SnapshotCache:
    """The snapshots of the tenants this process searched lately, least recent first."""

    def __init__(self, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        if memory_bytes < 1:
            raise ValueError("the snapshot memory budget must be positive")
        self.memory_bytes = memory_bytes
        self._lock = threading.Lock()
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._loads = 0
        self._evictions = 0

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
                with self._lock:
                    self._loads += 1
            fresh = slot.snapshot = catch_up(known, conn, generation)
        self._evict(keep=slot)
        return fresh

    def peek(self, tenant: str) -> Snapshot | None:
        """The tenant's snapshot as loaded, without catching up or counting as a use."""
        with self._lock:
            slot = self._slots.get(tenant)
        return slot.snapshot if slot else None

    def stats(self) -> CacheStats:
        with self._lock:
            snapshots = [s.snapshot for s in self._slots.values() if s.snapshot is not None]
            nbytes = sum(s.nbytes for s in snapshots)
            graphs = sum(1 for s in snapshots if s.graphs.graph is not None)
            return CacheStats(len(snapshots), nbytes, self._loads, self._evictions, graphs)

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()

    def _slot(self, tenant: str) -> _Slot:
        """The tenant's slot, now the most recently used."""
        with self._lock:
            slot = self._slots.get(tenant)
            if slot is None:
                slot = self._slots[tenant] = _Slot()
            self._slots.move_to_end(tenant)
            return slot

    def trim(self) -> None:
        """Evict down to the budget after a snapshot grew in place (its ANN graph arrived)."""
        with self._lock:
            newest = next(reversed(self._slots.values()), None)
        if newest is not None:
            self._evict(keep=newest)

    def _evict(self, keep: _Slot) -> None:
        """Drop the least recently used snapshots until the rest fit the budget; never ``keep``
        (the one a search is about to use), even when it alone is larger."""
        with self._lock:
            total = sum(s.snapshot.nbytes for s in self._slots.values() if s.snapshot)
            for tenant, slot in list(self._slots.items()):
                if total <= self.memory_bytes:
                    return
                if slot is keep:
                    continue
                del self._slots[tenant]
                if slot.snapshot is not None:
                    total -= slot.snapshot.nbytes
                    self._evictions += 1
