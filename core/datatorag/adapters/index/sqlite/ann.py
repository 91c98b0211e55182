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

A graph is served only if it answers well: once built, it is measured against exact search
(``calibration.py``) and served at the smallest ``ef`` that reaches ``min_recall``; when none
does, the tenant stays exact (a warning says so) until it has grown enough for a rebuild. Both
outcomes are saved beside the tenant's file (``<tenant>.<epoch>.hnsw`` and ``.ann.json``), so
another process, or this one after a restart or an eviction, reads them instead of measuring.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from datatorag.adapters.index.sqlite.calibration import Calibration, calibrate
from datatorag.domain.vectors import FloatArray
from datatorag.log import get_logger

if TYPE_CHECKING:
    from datatorag.adapters.index.sqlite.snapshot import Snapshot

log = get_logger(__name__)

# Measured on the corpus's real embeddings at 10x and 100x (bench/ann.py): see docs/benchmarks.md.
DEFAULT_MIN_CHUNKS = 20_000  # DATATORAG_ANN_MIN_CHUNKS
M = 16  # links per node (32 on the bottom layer)
EF_CONSTRUCTION = 100
# Candidates kept while searching (a larger k raises it to k): the smallest of these that
# reaches MIN_RECALL (recall@10 against exact search) when the graph is built.
EF_LADDER = (32, 64, 128, 256, 512, 1024, 2048)
MIN_RECALL = 0.95
OVERSAMPLE = 2.0  # extra candidates asked for, beyond top_k / (share of the graph that passes)
MIN_SHARE = 0.1  # a filter letting fewer of the graph's rows through is searched exactly
REBUILD_FRACTION = 0.1  # tail or dead rows, relative to the graph, that start a rebuild
PARTIAL_GRACE_S = 60.0  # an unlocked ``*.partial`` this old was left by a killed writer
CLOSE_WAIT_S = 60.0  # how long closing the index waits for a build in flight


@dataclass(frozen=True)
class AnnConfig:
    """When and how tenants get a graph. ``min_chunks`` 0 keeps every search exact;
    ``background`` False builds on the searching thread (tests, benchmarks)."""

    min_chunks: int = DEFAULT_MIN_CHUNKS
    m: int = M
    ef_construction: int = EF_CONSTRUCTION
    ef_ladder: tuple[int, ...] = EF_LADDER
    min_recall: float = MIN_RECALL  # 0 serves every graph at the ladder's first ef
    background: bool = True
    build_threads: int = 1  # a background build should leave the other core to searches


@dataclass(frozen=True)
class Graph:
    """An HNSW graph over the live rows of one snapshot, never mutated once published; or,
    with no ``index``, the record that the one built over them answered too badly."""

    index: Any  # hnswlib.Index (untyped), at ``ef``; None: search exactly
    last_rowid: int  # rows with a larger id were appended after the build
    count: int
    nbytes: int
    ef: int | None
    recall: float  # recall@10 against exact search when built (calibration.py)


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

    @property
    def serving(self) -> bool:
        graph = self.graph
        return graph is not None and graph.index is not None


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
    """A graph over ``snapshot``'s live rows, measured (``measure``). Reads only rows below its
    size, which no later snapshot writes, so it can run beside searches and catch-ups."""
    live = snapshot.alive
    vectors = np.ascontiguousarray(snapshot.matrix[live])
    labels = snapshot.rowids[live]
    return measure(build_index(vectors, labels, config), vectors, labels, config)


def build_index(vectors: FloatArray, labels: npt.NDArray[np.int64], config: AnnConfig) -> Any:
    """An hnswlib graph over ``vectors`` (unit rows) labelled ``labels``."""
    import hnswlib

    count, dimension = vectors.shape
    index = hnswlib.Index(space="ip", dim=dimension)
    index.init_index(
        max_elements=count, M=config.m, ef_construction=config.ef_construction, random_seed=100
    )
    index.add_items(vectors, labels, num_threads=config.build_threads)
    return index


def measure(index: Any, vectors: FloatArray, labels: Any, config: AnnConfig) -> Graph:
    """``index`` at the ef its calibration chose, or the record that it is not to be served."""
    calibration = calibrate(
        index, vectors, config.ef_ladder, config.min_recall, config.build_threads
    )
    return _graph(index, calibration, int(labels.max()), len(labels), vectors.shape[1], config)


def _graph(
    index: Any, calibration: Calibration, last: int, count: int, dimension: int, config: AnnConfig
) -> Graph:
    if calibration.ef is None:
        return Graph(None, last, count, 0, None, calibration.recall)
    index.set_ef(calibration.ef)
    nbytes = graph_nbytes(count, dimension, config.m)
    return Graph(index, last, count, nbytes, calibration.ef, calibration.recall)


def load_index(path: Path, dimension: int) -> Any:
    """An hnswlib graph saved by ``save`` (this process or another one serving the same files)."""
    import hnswlib

    index = hnswlib.Index(space="ip", dim=dimension)
    index.load_index(str(path))
    return index


class GraphFiles:
    """Where a tenant's graph for one database file (``epoch``) is kept: the hnswlib graph and
    the record of its calibration (``ef``, or null for exact search), beside the tenant's file."""

    def __init__(self, folder: Path, tenant: str, epoch: int) -> None:
        self.folder, self.tenant = folder, tenant
        self.graph = folder / f"{tenant}.{epoch}.hnsw"
        self.record = folder / f"{tenant}.{epoch}.ann.json"

    def load(self, dimension: int, config: AnnConfig) -> Graph | None:
        """The saved graph (or exact-search record), if one was saved under this ``config``'s
        bar; a graph saved without a record is measured now and its record written."""
        self.clean()
        try:
            record = json.loads(self.record.read_text())
            if record["min_recall"] != config.min_recall:
                record = None  # measured against another bar: measure again
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            record = None
        if record is not None and record["ef"] is None:
            return Graph(None, record["last_rowid"], record["count"], 0, None, record["recall"])
        if not self.graph.is_file():
            return None
        index = load_index(self.graph, dimension)
        labels = np.sort(np.asarray(index.get_ids_list(), np.int64))  # rowid order, as built
        if record is not None and (record["count"], record["last_rowid"]) != (
            len(labels),
            int(labels.max()),
        ):
            record = None  # a record of another build of this file
        if record is not None:
            calibration = Calibration(record["ef"], record["recall"], 0.0)
        else:
            vectors = np.asarray(index.get_items(labels, return_type="numpy"), np.float32)
            calibration = calibrate(
                index, vectors, config.ef_ladder, config.min_recall, config.build_threads
            )
            self._write_record(calibration, int(labels.max()), len(labels), config)
        return _graph(index, calibration, int(labels.max()), len(labels), dimension, config)

    def save(self, graph: Graph, config: AnnConfig) -> None:
        """Write ``graph`` (or only its record when it is not served), each whole then renamed
        into place (another process may be loading it); drop the tenant's files of older epochs
        and the ``*.partial`` files killed writers left."""
        self.clean()
        if graph.index is not None:
            with _partial(self.graph) as partial:
                graph.index.save_index(str(partial))
        calibration = Calibration(graph.ef, graph.recall, 0.0)
        self._write_record(calibration, graph.last_rowid, graph.count, config)
        for old in (
            *self.folder.glob(f"{self.tenant}.*.hnsw"),
            *self.folder.glob(f"{self.tenant}.*.ann.json"),
        ):
            if old not in (self.graph, self.record) or (graph.index is None and old == self.graph):
                old.unlink(missing_ok=True)

    def _write_record(
        self, calibration: Calibration, last_rowid: int, count: int, config: AnnConfig
    ) -> None:
        record = {
            "ef": calibration.ef,
            "recall": calibration.recall,
            "min_recall": config.min_recall,
            "last_rowid": last_rowid,
            "count": count,
        }
        with _partial(self.record) as partial:
            partial.write_text(json.dumps(record))

    def clean(self) -> None:
        """Remove the tenant's ``*.partial`` files no writer holds (a process killed mid-save
        leaves one; a writer holds a lock on its own until it renames it)."""
        for path in self.folder.glob(f"{self.tenant}.*.partial"):
            try:
                with open(path, "rb") as partial:
                    if time.time() - os.fstat(partial.fileno()).st_mtime < PARTIAL_GRACE_S:
                        continue  # just created: its writer may not hold the lock yet
                    fcntl.flock(partial, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    path.unlink(missing_ok=True)
            except (BlockingIOError, FileNotFoundError):
                continue  # held by a writer, or gone already


@contextmanager
def _partial(path: Path) -> Iterator[Path]:
    """A locked temporary file beside ``path``, renamed onto it once the body has written it."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        with open(partial, "wb") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # released by the kernel if this process dies
            yield partial
            os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


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
        self.builds: set[threading.Thread] = set()  # in flight
        self.closed = False

    def close(self, timeout: float = CLOSE_WAIT_S) -> None:
        """Start no more builds and wait for those in flight: a daemon thread still inside
        hnswlib when the interpreter exits aborts the process (std::terminate)."""
        self.closed = True
        for thread in list(self.builds):
            thread.join(timeout)

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
        if graph is None or graph.index is None:
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
            if slot.building or self.closed:
                return graph
            slot.building = True
            thread = threading.Thread(
                target=self._build, args=(tenant, slot, snapshot), name="ann-build", daemon=True
            )
            self.builds.add(thread)
        thread.start()
        return graph

    def _fresh(self, tenant: str, snapshot: Snapshot, current: Graph | None) -> Graph:
        """A graph that keeps up with ``snapshot``: the saved one if it does, else a new one
        (then saved)."""
        files = GraphFiles(self.folder, tenant, snapshot.epoch) if self.folder else None
        if current is None and files is not None:
            try:
                with _BUILDS:
                    saved = files.load(snapshot.matrix.shape[1], self.config)
            except (OSError, RuntimeError, MemoryError):  # cut short or foreign: build anew
                log.warning("ann graph unreadable", path=str(files.graph))
            else:
                if saved is not None and not self._stale(saved, snapshot):
                    if saved.index is None:  # each process that loads the tenant says so
                        self._report(tenant, saved, 0.0)
                    return saved
        began = time.perf_counter()
        with _BUILDS:
            graph = build(snapshot, self.config)
        self._report(tenant, graph, time.perf_counter() - began)
        if files is not None:
            try:
                files.save(graph, self.config)
            except (OSError, RuntimeError):  # a cache: the graph serves from memory anyway
                log.warning("ann graph not saved", path=str(files.graph), exc_info=True)
        return graph

    def _report(self, tenant: str, graph: Graph, seconds: float) -> None:
        if graph.index is None:
            log.warning(
                "ann graph rejected: recall under the bar, tenant searched exactly",
                tenant=tenant,
                rows=graph.count,
                recall=graph.recall,
                min_recall=self.config.min_recall,
                max_ef=self.config.ef_ladder[-1],
            )
        else:
            log.info(
                "ann graph built",
                tenant=tenant,
                rows=graph.count,
                ef=graph.ef,
                recall=graph.recall,
                seconds=round(seconds, 1),
            )

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
        else:
            slot.graph = graph
            slot.building = False
            self.built()
        finally:
            self.builds.discard(threading.current_thread())
