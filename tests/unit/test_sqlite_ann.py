"""The embedded index's HNSW graphs (``datatorag.adapters.index.sqlite.ann``): what the graph
answers is what exact search answers, with filters, deletions, appended rows and compaction,
while the graph is built, rebuilt and counted in the snapshot budget."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.adapters.index.sqlite import ann as ann_module
from datatorag.adapters.index.sqlite.ann import REBUILD_FRACTION, AnnConfig, graph_nbytes
from datatorag.domain.models import SearchHit
from tests.contracts.search_index import TENANT, index_doc

pytestmark = pytest.mark.unit

DIMENSION = 32
DOCS = 30
CHUNKS = 20  # 600 rows
# Graphs forced on and served only at an ef where they find every neighbour of the calibration
# queries, so that their answers can be compared with exact search's one for one.
GRAPH = AnnConfig(min_chunks=1, background=False, min_recall=1.0)


def unit_rows(seed: int, n: int) -> list[list[float]]:
    rows = np.random.default_rng(seed).normal(size=(n, DIMENSION))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).tolist()


def add_doc(index: SqliteSearchIndex, doc: int, vectors: list[list[float]] | None = None) -> None:
    vectors = vectors or unit_rows(doc, CHUNKS)
    texts = [f"document {doc} passage {i}" for i in range(len(vectors))]
    index_doc(index, f"d{doc}", texts, vectors, metadata={"country": "FR" if doc % 3 else "US"})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "index"
    writer = SqliteSearchIndex(root)
    for doc in range(DOCS):
        add_doc(writer, doc)
    writer.close()
    return root


@pytest.fixture
def exact(root: Path) -> Iterator[SqliteSearchIndex]:
    index = SqliteSearchIndex(root, ann=AnnConfig(min_chunks=0))
    yield index
    index.close()


@pytest.fixture
def ann(root: Path) -> Iterator[SqliteSearchIndex]:
    index = SqliteSearchIndex(root, ann=GRAPH)
    yield index
    index.close()


def ids(hits: list[SearchHit]) -> list[str]:
    return [h.chunk_id for h in hits]


QUERIES = unit_rows(999, 20)


def graph_of(index: SqliteSearchIndex) -> object:
    snapshot = index._snapshots.peek(TENANT)
    assert snapshot is not None
    return snapshot.graphs.graph


def test_the_graph_answers_what_exact_search_answers(
    exact: SqliteSearchIndex, ann: SqliteSearchIndex
) -> None:
    for q in QUERIES:
        got, want = ann.vector_search(TENANT, q, 10), exact.vector_search(TENANT, q, 10)
        assert ids(got) == ids(want)
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-6)
    assert ann.approximate.answered == ann.approximate.asked == len(QUERIES)
    assert exact.approximate.asked == 0


def test_below_the_threshold_search_stays_exact(root: Path, exact: SqliteSearchIndex) -> None:
    index = SqliteSearchIndex(root, ann=AnnConfig(min_chunks=DOCS * CHUNKS + 1, background=False))
    assert ids(index.vector_search(TENANT, QUERIES[0], 10)) == ids(
        exact.vector_search(TENANT, QUERIES[0], 10)
    )
    assert index.approximate.asked == 0 and index.snapshot_stats().graphs == 0
    index.close()


def test_a_filter_is_applied_to_the_graphs_answer(
    exact: SqliteSearchIndex, ann: SqliteSearchIndex
) -> None:
    where = {"metadata.country": "US"}  # a third of the rows
    for q in QUERIES:
        got = ann.vector_search(TENANT, q, 10, where)
        assert ids(got) == ids(exact.vector_search(TENANT, q, 10, where))
        assert all(int(h.doc_id[1:]) % 3 == 0 for h in got)
    assert ann.approximate.answered == len(QUERIES)


def test_a_selective_filter_is_searched_exactly(
    exact: SqliteSearchIndex, ann: SqliteSearchIndex
) -> None:
    where = {"doc_id": "d7"}  # 1 row in 30
    got = ann.vector_search(TENANT, QUERIES[0], 5, where)
    assert ids(got) == ids(exact.vector_search(TENANT, QUERIES[0], 5, where))
    assert {h.doc_id for h in got} == {"d7"} and len(got) == 5
    assert ann.approximate.asked == 1 and ann.approximate.answered == 0


def test_deleted_chunks_never_come_back(ann: SqliteSearchIndex) -> None:
    target = unit_rows(4, CHUNKS)[3]  # a chunk of d4 is the best match for itself
    assert ann.vector_search(TENANT, target, 1)[0].doc_id == "d4"
    graph = graph_of(ann)
    ann.delete_document(TENANT, "d4")
    hits = ann.vector_search(TENANT, target, 50)
    assert len(hits) == 50 and "d4" not in {h.doc_id for h in hits}
    assert graph_of(ann) is graph  # 20 dead rows of 600: the graph is kept, not rebuilt
    assert ann.approximate.answered == 2


def test_appended_chunks_are_found_before_the_graph_is_rebuilt(ann: SqliteSearchIndex) -> None:
    ann.vector_search(TENANT, QUERIES[0], 10)
    graph = graph_of(ann)
    add_doc(ann, 100, [QUERIES[0], *unit_rows(100, 4)])
    hits = ann.vector_search(TENANT, QUERIES[0], 10)
    assert hits[0].chunk_id == "d100:v1:0" and hits[0].score == pytest.approx(1.0)
    assert graph_of(ann) is graph  # a 5-row tail is scored exactly
    assert ann.approximate.answered == 2


def test_the_graph_is_rebuilt_once_the_tail_grows_past_a_tenth(ann: SqliteSearchIndex) -> None:
    ann.vector_search(TENANT, QUERIES[0], 10)
    first = graph_of(ann)
    for doc in range(100, 100 + int(DOCS * REBUILD_FRACTION) + 1):
        add_doc(ann, doc)
    ann.vector_search(TENANT, QUERIES[0], 10)
    rebuilt = graph_of(ann)
    assert rebuilt is not first
    assert rebuilt.count == (DOCS + int(DOCS * REBUILD_FRACTION) + 1) * CHUNKS  # type: ignore[attr-defined]


def test_an_older_graph_still_serves_a_compacted_snapshot(tmp_path: Path) -> None:
    """Compaction moves rows; the graph's labels are row ids, so it keeps answering right."""
    root = tmp_path / "index"
    index = SqliteSearchIndex(root, ann=GRAPH)
    exact = SqliteSearchIndex(root, ann=AnnConfig(min_chunks=0))
    for doc in range(120):
        add_doc(index, doc)  # 2,400 rows
    index.vector_search(TENANT, QUERIES[0], 10)
    snapshot = index._snapshots.peek(TENANT)
    assert snapshot is not None
    graph, slot = snapshot.graphs.graph, snapshot.graphs
    slot.building = True  # hold the rebuild: the old graph must serve the compacted rows
    object.__setattr__(index.approximate, "config", AnnConfig(min_chunks=1))
    for doc in range(0, 120, 2):
        index.delete_document(TENANT, f"d{doc}")  # 1,200 dead rows: past the compaction point
    for q in QUERIES:
        got = index.vector_search(TENANT, q, 10)
        assert ids(got) == ids(exact.vector_search(TENANT, q, 10))
    compacted = index._snapshots.peek(TENANT)
    assert compacted is not None and compacted.dead == 0 and compacted.size == 1200
    assert compacted.graphs.graph is graph
    index.close()
    exact.close()


def test_a_graph_is_built_in_the_background_while_exact_search_serves(
    root: Path, exact: SqliteSearchIndex
) -> None:
    index = SqliteSearchIndex(root, ann=AnnConfig(min_chunks=1))
    want = ids(exact.vector_search(TENANT, QUERIES[0], 10))
    assert ids(index.vector_search(TENANT, QUERIES[0], 10)) == want
    deadline = time.monotonic() + 60
    while index.snapshot_stats().graphs == 0:
        assert time.monotonic() < deadline, "the background build never finished"
        time.sleep(0.05)
    answered = index.approximate.answered
    assert ids(index.vector_search(TENANT, QUERIES[0], 10)) == want
    assert index.approximate.answered == answered + 1
    index.close()


def test_the_graph_counts_in_the_snapshot_budget(ann: SqliteSearchIndex) -> None:
    ann.keyword_search(TENANT, "passage", 1)
    without = ann.snapshot_stats()
    ann.vector_search(TENANT, QUERIES[0], 1)
    with_graph = ann.snapshot_stats()
    assert without.graphs == 0 and with_graph.graphs == 1
    assert with_graph.nbytes - without.nbytes == graph_nbytes(DOCS * CHUNKS, DIMENSION, 16)


def test_a_graph_is_dropped_with_its_evicted_tenant(root: Path) -> None:
    index = SqliteSearchIndex(root, snapshot_memory_bytes=1, ann=GRAPH)
    add_doc_other = SqliteSearchIndex(root)
    index_doc(add_doc_other, "x", ["other tenant"], unit_rows(5, 1), tenant="globex")
    add_doc_other.close()
    index.vector_search(TENANT, QUERIES[0], 1)
    assert index.snapshot_stats().graphs == 1
    assert index.vector_search("globex", QUERIES[0], 5)[0].doc_id == "x"
    stats = index.snapshot_stats()
    assert (stats.tenants, stats.graphs, stats.evictions) == (1, 1, 1)  # globex's own graph
    index.close()


def test_a_saved_graph_is_read_back_instead_of_built(
    root: Path, ann: SqliteSearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = ids(ann.vector_search(TENANT, QUERIES[0], 10))
    saved = list(root.glob(f"{TENANT}.*.hnsw"))
    assert len(saved) == 1  # beside acme.db, named by the file's epoch
    monkeypatch.setattr(ann_module, "build", lambda *a: pytest.fail("built instead of loaded"))
    again = SqliteSearchIndex(root, ann=GRAPH)
    assert ids(again.vector_search(TENANT, QUERIES[0], 10)) == want
    assert again.approximate.answered == 1
    again.close()


def test_an_unreadable_saved_graph_is_built_again(root: Path, ann: SqliteSearchIndex) -> None:
    want = ids(ann.vector_search(TENANT, QUERIES[0], 10))
    (saved,) = root.glob(f"{TENANT}.*.hnsw")
    saved.write_bytes(b"not a graph")
    again = SqliteSearchIndex(root, ann=GRAPH)
    assert ids(again.vector_search(TENANT, QUERIES[0], 10)) == want
    assert again.approximate.answered == 1 and saved.stat().st_size > 1000  # saved anew
    again.close()


# -- calibration: a graph is served only if it answers like exact search ------------------------


def near_copies(seed: int, clusters: int = 30, copies: int = 40) -> list[list[float]]:
    """``copies`` near-identical vectors around each of ``clusters`` random centres: the input
    where an HNSW graph with few links per node gets stuck inside one cluster."""
    rng = np.random.default_rng(seed)
    centres = np.repeat(rng.normal(size=(clusters, DIMENSION)), copies, axis=0)
    rows = centres + rng.normal(size=centres.shape) * 0.05
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).tolist()


CRIPPLED = AnnConfig(min_chunks=1, background=False, m=2, ef_construction=10)


def test_a_graph_that_cannot_reach_the_bar_is_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "index"
    vectors = near_copies(1)
    writer = SqliteSearchIndex(root)
    for doc in range(len(vectors) // CHUNKS):
        add_doc(writer, doc, vectors[doc * CHUNKS : (doc + 1) * CHUNKS])
    writer.close()
    exact = SqliteSearchIndex(root, ann=AnnConfig(min_chunks=0))
    index = SqliteSearchIndex(root, ann=CRIPPLED)
    queries = [vectors[i] for i in range(0, len(vectors), 97)]
    with capture_logs() as logs:
        for q in queries:
            want = exact.vector_search(TENANT, q, 10)
            assert ids(index.vector_search(TENANT, q, 10)) == ids(want)
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert warning["tenant"] == TENANT and warning["recall"] < CRIPPLED.min_recall
    assert index.approximate.answered == 0 and index.snapshot_stats().graphs == 0
    slot = graph_of(index)
    assert slot.index is None and slot.ef is None  # type: ignore[attr-defined]
    assert not list(root.glob("*.hnsw"))
    (record,) = root.glob(f"{TENANT}.*.ann.json")
    assert json.loads(record.read_text())["ef"] is None
    # Another process reads the verdict instead of building and measuring again.
    monkeypatch.setattr(ann_module, "build", lambda *a: pytest.fail("built again"))
    again = SqliteSearchIndex(root, ann=CRIPPLED)
    with capture_logs() as logs:
        want = exact.vector_search(TENANT, queries[0], 10)
        assert ids(again.vector_search(TENANT, queries[0], 10)) == ids(want)
    assert [e["recall"] for e in logs if e["log_level"] == "warning"] == [warning["recall"]]
    assert again.approximate.asked == 1 and again.approximate.answered == 0
    for opened in (exact, index, again):
        opened.close()


def test_a_healthy_graph_is_served_at_the_ef_its_calibration_chose(
    root: Path, exact: SqliteSearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = AnnConfig(min_chunks=1, background=False, ef_ladder=(1, 4, 16, 64, 256))
    index = SqliteSearchIndex(root, ann=config)
    index.vector_search(TENANT, QUERIES[0], 10)
    graph = graph_of(index)
    assert graph.ef in config.ef_ladder[1:] and graph.recall >= config.min_recall  # type: ignore[attr-defined]
    assert graph.index.ef == graph.ef  # type: ignore[attr-defined]
    (record,) = root.glob(f"{TENANT}.*.ann.json")
    assert json.loads(record.read_text())["ef"] == graph.ef  # type: ignore[attr-defined]
    # Read back with its ef, without measuring again.
    monkeypatch.setattr(ann_module, "calibrate", lambda *a: pytest.fail("measured again"))
    again = SqliteSearchIndex(root, ann=config)
    hits = again.vector_search(TENANT, QUERIES[0], 10)
    assert graph_of(again).ef == graph.ef  # type: ignore[attr-defined]
    assert graph_of(again).index.ef == graph.ef  # type: ignore[attr-defined]
    assert again.approximate.answered == 1 and len(hits) == 10
    index.close()
    again.close()


def test_a_graph_saved_without_a_record_is_measured_when_read_back(
    root: Path, ann: SqliteSearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann.vector_search(TENANT, QUERIES[0], 10)
    (record,) = root.glob(f"{TENANT}.*.ann.json")
    record.unlink()  # as saved before graphs were measured
    monkeypatch.setattr(ann_module, "build", lambda *a: pytest.fail("built instead of loaded"))
    again = SqliteSearchIndex(root, ann=GRAPH)
    again.vector_search(TENANT, QUERIES[0], 10)
    assert graph_of(again).ef is not None and again.approximate.answered == 1  # type: ignore[attr-defined]
    assert json.loads(record.read_text())["ef"] == graph_of(again).ef  # type: ignore[attr-defined]
    again.close()


def test_a_stale_partial_file_is_removed_and_a_writers_is_kept(root: Path) -> None:
    stale, held = root / f"{TENANT}.7.hnsw.1.2.partial", root / f"{TENANT}.7.hnsw.3.4.partial"
    other = root / "globex.7.hnsw.5.6.partial"
    long_ago = time.time() - 3600
    for path in (stale, held, other):
        path.write_bytes(b"half a graph")
        os.utime(path, (long_ago, long_ago))
    with open(held, "rb") as writer:
        fcntl.flock(writer, fcntl.LOCK_EX)  # a live writer holds its partial file
        index = SqliteSearchIndex(root, ann=GRAPH)
        index.vector_search(TENANT, QUERIES[0], 10)  # builds and saves acme's graph
        index.close()
    assert not stale.exists() and held.exists() and other.exists()


def test_a_graph_saved_under_another_bar_is_measured_again_not_rebuilt(
    root: Path, ann: SqliteSearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann.vector_search(TENANT, QUERIES[0], 10)
    assert graph_of(ann).ef > 32  # type: ignore[attr-defined]
    monkeypatch.setattr(ann_module, "build", lambda *a: pytest.fail("built instead of loaded"))
    lenient = AnnConfig(min_chunks=1, background=False, min_recall=0.0)
    again = SqliteSearchIndex(root, ann=lenient)
    again.vector_search(TENANT, QUERIES[0], 10)
    assert graph_of(again).ef == lenient.ef_ladder[0]  # type: ignore[attr-defined]
    (record,) = root.glob(f"{TENANT}.*.ann.json")
    assert json.loads(record.read_text())["min_recall"] == 0.0
    again.close()


def test_closing_the_index_waits_for_a_build_in_flight(root: Path) -> None:
    index = SqliteSearchIndex(root, ann=AnnConfig(min_chunks=1))
    index.vector_search(TENANT, QUERIES[0], 10)  # starts a build in the background
    (thread,) = index.approximate.builds or [None]
    index.close()
    assert thread is None or not thread.is_alive()
    assert not index.approximate.builds
    assert list(root.glob(f"{TENANT}.*.ann.json"))  # the build finished and was saved


def test_a_stale_partial_file_is_removed_when_the_saved_graph_is_read(
    root: Path, ann: SqliteSearchIndex
) -> None:
    ann.vector_search(TENANT, QUERIES[0], 10)  # built and saved
    stale = root / f"{TENANT}.7.hnsw.1.2.partial"
    stale.write_bytes(b"half a graph")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    again = SqliteSearchIndex(root, ann=GRAPH)
    again.vector_search(TENANT, QUERIES[0], 10)  # reads the saved graph
    assert again.approximate.answered == 1 and not stale.exists()
    again.close()
