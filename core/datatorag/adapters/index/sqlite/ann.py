"""Approximate vector search for large tenants: an HNSW graph (hnswlib) beside a snapshot.

Below ``min_chunks`` live chunks a tenant is searched exactly (a few ms at 20k rows); above it
a graph answers in well under a millisecond (docs/benchmarks.md, "Approximate vector search").

A graph is immutable once published, like the snapshots it serves: hnswlib's ``add_items``,
``mark_deleted`` and ``resize_index`` are not safe while another thread runs ``knn_query`` (its
README), and a reader must never see its index change under it. So the graph follows the file
without being mutated:

- its labels are chunk row ids, which never change (compaction moves rows, not ids), so a graph
  built from one generation serves every later generation of the same file;
- rows appended since the build (ids above the graph's last) are scored exactly: a short tail;
- deleted and filtered-out rows are dropped from an oversampled answer; when too few survive,
  or the filter lets few rows through, the search is exact instead;
- once the tail or the graph's dead rows pass ``REBUILD_FRACTION`` of it, a new graph is built
  in the background and replaces it; exact search serves until a tenant's first graph is ready.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from datatorag.domain.vectors import FloatArray
from datatorag.log import get_logger

if TYPE_CHECKING:
    from datatorag.adapters.index.sqlite.snapshot import Snapshot

log = get_logger(__name__)

# Measured on the corpus's real embeddings at 10x and 100x (bench/ann.py): see docs/benchmarks.md.
DEFAULT_MIN_CHUNKS = 20_000  # DATATORAG_ANN_MIN_CHUNKS
M = 16  # links per node (32 on the bottom layer)
EF_CONSTRUCTION = 100
EF_SEARCH = 128  # candidates kept while searching; a larger k raises it to k
OVERSAMPLE = 2.0  # extra candidates asked for, beyond top_k / (share of the graph that passes)
MIN_SHARE = 0.1  # a filter letting fewer of the graph's rows through is searched exactly
REBUILD_FRACTION = 0.1  # tail or dead rows, relative to the graph, that start a rebuild


@dataclass(frozen=True)
class AnnConfig:
    """When and how tenants get a graph. ``min_chunks`` 0 keeps every search exact;
    ``background`` False builds on the searching thread (tests, benchmarks)."""

    min_chunks: int = DEFAULT_MIN_CHUNKS
    m: int = M
    ef_construction: int = EF_CONSTRUCTION
    ef_search: int = EF_SEARCH
    background: bool = True
    build_threads: int = 1  # a background build should leave the other core to searches


@dataclass(frozen=True)
class Graph:
    """An HNSW graph over the live rows of one snapshot; never mutated once published."""

    index: Any  # hnswlib.Index (untyped)
    last_rowid: int  # rows with a larger id were appended after the build
    count: int
    nbytes: int


class GraphSlot:
    """A tenant's current graph, shared by the snapshots of one file: each is a consistent view
    of it (see the module docstring), so replacing it under a reader is harmless."""

    def __init__(self) -> None:
        self.graph: Graph | None = None
        self.building = False
        self.lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        graph = self.graph
        return graph.nbytes if graph else 0


_BUILDS = threading.Lock()  # one build at a time per process: it is all CPU


def graph_nbytes(count: int, dimension: int, m: int) -> int:
    """hnswlib's memory for ``count`` elements (hnswalg.h): per element the bottom layer (2M
    links, the vector, the label), its mutex, its level and upper links (1/ln M levels on
    average), the label map's node; plus the 65,536 label-op mutexes and a visited list."""
    per_element = (2 * m * 4 + 4) + dimension * 4 + 8  # bottom layer: links, vector, label
    per_element += 40 + 4 + 8  # link-list mutex, level, upper-link pointer
    per_element += math.ceil((m * 4 + 4) / math.log(m))  # upper layers
    per_element += 48 + 2  # label -> slot map node and bucket; visited-list entry
    return count * per_element + 65_536 * 40


def build(snapshot: Snapshot, config: AnnConfig) -> Graph:
    """A graph over ``snapshot``'s live rows. Reads only rows below its size, which no later
    snapshot writes, so it can run beside searches and catch-ups."""
    import hnswlib

    live = snapshot.alive
    vectors = np.ascontiguousarray(snapshot.matrix[live])
    labels = snapshot.rowids[live]
    count, dimension = vectors.shape
    index = hnswlib.Index(space="ip", dim=dimension)
    index.init_index(
        max_elements=count, M=config.m, ef_construction=config.ef_construction, random_seed=100
    )
    index.add_items(vectors, labels, num_threads=config.build_threads)
    index.set_ef(config.ef_search)
    return Graph(index, int(labels[-1]), count, graph_nbytes(count, dimension, config.m))


def load(path: Path, dimension: int, config: AnnConfig) -> Graph:
    """A graph saved by ``save`` (this process or another one serving the same files)."""
    import hnswlib

    index = hnswlib.Index(space="ip", dim=dimension)
    index.load_index(str(path))
    index.set_ef(config.ef_search)
    labels = index.get_ids_list()
    count = len(labels)
    return Graph(index, max(labels), count, graph_nbytes(count, dimension, config.m))


def save(graph: Graph, path: Path) -> None:
    """Write ``graph`` whole, then rename it into place (another process may be loading it);
    drop the tenant's graphs of older files (epochs)."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        graph.index.save_index(str(partial))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    tenant = path.name.split(".", 1)[0]
    for old in path.parent.glob(f"{tenant}.*.hnsw"):
        if old != path:
            old.unlink(missing_ok=True)


class Approximate:
    """Answers vector searches from a tenant's graph where it has one; builds graphs, and keeps
    them beside the tenant's database file when given its ``folder`` (``<tenant>.<epoch>.hnsw``)
    so that a process loading a tenant again reads its graph instead of building it."""

    def __init__(
        self,
        config: AnnConfig,
        folder: Path | None = None,
        built: Callable[[], object] = lambda: None,
    ) -> None:
        """``built`` runs after a build published a graph (the snapshot budget re-checks what
        it holds)."""
        self.config = config
        self.folder = folder
        self.built = built
        # Vector searches over the threshold, and those a graph answered (unlocked: a gauge).
        self.asked = self.answered = 0

    def top_k(
        self,
        tenant: str,
        snapshot: Snapshot,
        query: FloatArray,
        top_k: int,
        allowed: npt.NDArray[np.bool_],
    ) -> tuple[list[int], list[float]] | None:
        """Row ids and cosine scores of the best ``top_k`` allowed rows, or None when this
        search should be exact (small tenant, no graph yet, a selective filter)."""
        live = snapshot.size - snapshot.dead
        if not self.config.min_chunks or live < self.config.min_chunks:
            return None
        self.asked += 1
        graph = self._graph(tenant, snapshot)
        if graph is None:
            return None
        tail = int(np.searchsorted(snapshot.rowids, graph.last_rowid, side="right"))
        passing = int(np.count_nonzero(allowed[:tail]))
        if passing < MIN_SHARE * graph.count:
            return None
        wanted = min(top_k, passing)
        k = min(graph.count, math.ceil(wanted * graph.count / passing * OVERSAMPLE) + 1)
        try:
            labels, _ = graph.index.knn_query(query, k=k, num_threads=1)
        except RuntimeError:  # fewer than k reachable: hnswlib refuses to return a short row
            return None
        ids = labels[0].astype(np.int64)
        positions = np.searchsorted(snapshot.rowids[:tail], ids)
        kept = positions < tail  # an id compacted away lands on a neighbour or past the end
        kept[kept] = snapshot.rowids[positions[kept]] == ids[kept]
        positions = positions[kept]
        found = positions[allowed[positions]]
        if found.shape[0] < wanted:
            return None  # the filter or deletions took too many: exact finds them all
        candidates = np.concatenate([found, tail + np.flatnonzero(allowed[tail:])])
        scores = np.einsum("ij,j->i", snapshot.matrix[candidates], query)
        best = np.argsort(-scores, kind="stable")[:top_k]
        self.answered += 1
        return snapshot.rowids[candidates[best]].tolist(), scores[best].tolist()

    def _graph(self, tenant: str, snapshot: Snapshot) -> Graph | None:
        """The tenant's graph, after starting a build if it has none or it fell behind."""
        slot = snapshot.graphs
        graph = slot.graph
        if graph is not None and not self._stale(graph, snapshot):
            return graph
        if not self.config.background:
            with slot.lock:
                if slot.graph is graph:
                    slot.graph = self._fresh(tenant, snapshot, graph)
            self.built()
            return slot.graph
        with slot.lock:
            if slot.building:
                return graph
            slot.building = True
        threading.Thread(
            target=self._build, args=(tenant, slot, snapshot), name="ann-build", daemon=True
        ).start()
        return graph

    def _fresh(self, tenant: str, snapshot: Snapshot, current: Graph | None) -> Graph:
        """A graph that keeps up with ``snapshot``: the saved one if it does, else a new one
        (then saved)."""
        path = self.folder / f"{tenant}.{snapshot.epoch}.hnsw" if self.folder else None
        if current is None and path is not None and path.is_file():
            try:
                saved = load(path, snapshot.matrix.shape[1], self.config)
            except (OSError, RuntimeError, MemoryError):  # cut short or foreign: build anew
                log.warning("ann graph unreadable", path=str(path))
            else:
                if not self._stale(saved, snapshot):
                    return saved
        with _BUILDS:
            graph = build(snapshot, self.config)
        if path is not None:
            try:
                save(graph, path)
            except (OSError, RuntimeError):  # a cache: the graph serves from memory anyway
                log.warning("ann graph not saved", path=str(path), exc_info=True)
        return graph

    @staticmethod
    def _stale(graph: Graph, snapshot: Snapshot) -> bool:
        tail = int(np.searchsorted(snapshot.rowids, graph.last_rowid, side="right"))
        dead_in_graph = graph.count - int(np.count_nonzero(snapshot.alive[:tail]))
        return max(snapshot.size - tail, dead_in_graph) > REBUILD_FRACTION * graph.count

    def _build(self, tenant: str, slot: GraphSlot, snapshot: Snapshot) -> None:
        try:
            graph = self._fresh(tenant, snapshot, slot.graph)
        except Exception:  # the tenant stays on exact search until it is reloaded
            log.exception("ann graph build failed")
            return
        slot.graph = graph
        slot.building = False
        log.info("ann graph ready", rows=graph.count)
        self.built()
