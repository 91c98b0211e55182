"""Each tenant's latest snapshot in this process, shared by its threads, within a memory budget.

Past the budget the least recently searched tenants' snapshots are dropped (whole: a tenant is
in memory or not) and reloaded from their file when searched again. A thread still ranking a
dropped snapshot keeps its reference; snapshots are immutable, so nothing changes under it.

Each full load is logged (``index.snapshot_loaded``: tenant, chunks, milliseconds, what was
evicted and what stays resident), with the request id of the search that paid for it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from datatorag.adapters.index.sqlite.snapshot import Snapshot, catch_up, empty_snapshot
from datatorag.adapters.index.sqlite.store import meta
from datatorag.log import get_logger

log = get_logger(__name__)

DEFAULT_MEMORY_BYTES = 512 * 2**20  # DATATORAG_SNAPSHOT_MEMORY_MB


@dataclass(frozen=True)
class CacheStats:
    tenants: int  # tenants in memory
    nbytes: int  # their snapshots' estimated memory
    loads: int  # full loads from a file (a tenant's first search, or after eviction)
    evictions: int
    graphs: int = 0  # of those tenants, how many are served by an ANN graph (counted in nbytes)


class _Slot:
    """One tenant's snapshot; its lock lets one thread load while others wait for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snapshot: Snapshot | None = None
        # What the cache's totals hold for this slot: a snapshot grows in place when its ANN
        # graph arrives, so its ``nbytes`` now may differ from what was counted.
        self.counted_bytes = 0
        self.counted_graph = False


class SnapshotCache:
    """The snapshots of the tenants this process searched lately, least recent first."""

    def __init__(self, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        if memory_bytes < 1:
            raise ValueError("the snapshot memory budget must be positive")
        self.memory_bytes = memory_bytes
        self._lock = threading.Lock()
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        # Of the loaded snapshots in ``_slots``, kept up to date as they change, never summed.
        self._resident = 0
        self._nbytes = 0
        self._graphs = 0
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
            started = time.perf_counter()
            full = (
                known is None
                or known.epoch != epoch  # the file was recreated since
                or known.generation < meta(conn, "tombstone_floor")  # fell behind the log
            )
            if known is None or full:
                known = empty_snapshot(epoch)  # load everything
            fresh = catch_up(known, conn, generation)
            self._publish(tenant, slot, fresh, loaded=full)
        evicted = self._evict(keep=slot)
        if full:
            self._log_load(tenant, fresh, time.perf_counter() - started, evicted)
        return fresh

    def _publish(self, tenant: str, slot: _Slot, fresh: Snapshot, *, loaded: bool) -> None:
        with self._lock:
            old, slot.snapshot = slot.snapshot, fresh
            self._loads += loaded
            if self._slots.get(tenant) is slot:
                self._resident += old is None
                self._count(slot)
            elif old is None:  # evicted while it loaded: this search uses it, then it is gone
                self._evictions += 1

    def _log_load(self, tenant: str, fresh: Snapshot, seconds: float, evicted: int) -> None:
        stats = self.stats()
        log.info(
            "index.snapshot_loaded",
            tenant=tenant,
            chunks=fresh.size,
            ms=round(1000 * seconds, 2),
            evicted=evicted,
            resident_tenants=stats.tenants,
            resident_mb=round(stats.nbytes / 2**20, 1),
            loads=stats.loads,
            evictions=stats.evictions,
            pid=os.getpid(),  # the API runs several worker processes, each with its own cache
        )

    def peek(self, tenant: str) -> Snapshot | None:
        """The tenant's snapshot as loaded, without catching up or counting as a use."""
        with self._lock:
            slot = self._slots.get(tenant)
        return slot.snapshot if slot else None

    def stats(self) -> CacheStats:
        """In constant time: searches may ask it (a sum over a thousand tenants cost ~1 ms)."""
        with self._lock:
            return CacheStats(
                self._resident, self._nbytes, self._loads, self._evictions, self._graphs
            )

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()
            self._resident = self._nbytes = self._graphs = 0

    def _slot(self, tenant: str) -> _Slot:
        """The tenant's slot, now the most recently used."""
        with self._lock:
            slot = self._slots.get(tenant)
            if slot is None:
                slot = self._slots[tenant] = _Slot()
            self._slots.move_to_end(tenant)
            return slot

    def _count(self, slot: _Slot) -> None:
        """Bring the totals up to date with the slot's snapshot (under ``_lock``)."""
        snapshot = slot.snapshot
        nbytes = snapshot.nbytes if snapshot else 0
        graph = snapshot is not None and snapshot.graphs.serving
        self._nbytes += nbytes - slot.counted_bytes
        self._graphs += graph - slot.counted_graph
        slot.counted_bytes, slot.counted_graph = nbytes, graph

    def trim(self) -> None:
        """Recount and evict down to the budget after a snapshot grew in place (its ANN graph
        arrived): rare, so it may walk every slot."""
        with self._lock:
            for slot in self._slots.values():
                self._count(slot)
            newest = next(reversed(self._slots.values()), None)
        if newest is not None:
            self._evict(keep=newest)

    def _evict(self, keep: _Slot) -> int:
        """Drop the least recently used snapshots until the rest fit the budget; never ``keep``
        (the one a search is about to use), even when it alone is larger. How many it dropped."""
        dropped = 0
        with self._lock:
            if self._nbytes <= self.memory_bytes:
                return 0
            for tenant, slot in list(self._slots.items()):
                if self._nbytes <= self.memory_bytes:
                    break
                if slot is keep:
                    continue
                del self._slots[tenant]
                if slot.snapshot is not None:
                    dropped += 1
                self._nbytes -= slot.counted_bytes
                self._graphs -= slot.counted_graph
                slot.counted_bytes, slot.counted_graph = 0, False
            self._resident -= dropped
            self._evictions += dropped
        return dropped
