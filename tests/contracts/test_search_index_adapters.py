"""Every ``SearchIndex`` adapter against the behaviour suite, plus what only the local one has."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from datatorag.adapters.local.filters import DocAttrs, parse_filters
from datatorag.adapters.local.index import MAX_IDLE_CONNECTIONS, SqliteSearchIndex, fts_query
from datatorag.models import DocumentStatus
from datatorag.ports import SearchIndex
from tests.contracts.search_index import (
    TENANT,
    SearchIndexContract,
    doc_ids,
    ids,
    index_doc,
    make_chunks,
    record,
    unit,
)

pytestmark = pytest.mark.unit


class TestSqliteSearchIndex(SearchIndexContract):
    @pytest.fixture
    def search_index(self, tmp_path: Path) -> Iterator[SearchIndex]:
        index = SqliteSearchIndex(tmp_path / "index")
        yield index
        index.close()


# -- local adapter only --------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "index"


@pytest.fixture
def index(root: Path) -> Iterator[SqliteSearchIndex]:
    index = SqliteSearchIndex(root)
    yield index
    index.close()


def test_it_is_a_search_index(index: SqliteSearchIndex) -> None:
    assert isinstance(index, SearchIndex)


def test_each_tenant_has_its_own_file(index: SqliteSearchIndex, root: Path) -> None:
    index_doc(index, "d1", ["Acme text."])
    index_doc(index, "d1", ["Globex text."], tenant="globex")
    index.keyword_search("nobody", "text", 5)
    index.get_document("nobody", "d1")
    assert sorted(p.name for p in root.glob("*.db")) == ["acme.db", "globex.db"]
    with sqlite3.connect(root / "globex.db") as conn:
        assert conn.execute("SELECT text FROM chunk_texts").fetchall() == [("Globex text.",)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_another_process_sees_swaps_and_deletes(index: SqliteSearchIndex, root: Path) -> None:
    """A second instance (as in the query API) keeps its matrix in step with the writer's."""
    reader = SqliteSearchIndex(root)
    try:
        first = index_doc(index, "d1", ["First version."])
        assert ids(reader.vector_search(TENANT, first[0].vector, 5)) == ["d1:v1:0"]
        index.upsert_document(record("d1", "v2"))
        second = make_chunks("d1", "v2", ["Second version.", "More."])
        assert index.replace_chunks(TENANT, "d1", "v2", second)
        assert sorted(ids(reader.vector_search(TENANT, first[0].vector, 5))) == [
            "d1:v2:0",
            "d1:v2:1",
        ]
        # The old row would score 1.0: it must be gone from the matrix, not just from the hits.
        assert len(reader.vector_search(TENANT, first[0].vector, 1)) == 1
        assert ids(reader.keyword_search(TENANT, "second", 5)) == ["d1:v2:0"]
        index.delete_document(TENANT, "d1")
        assert reader.vector_search(TENANT, first[0].vector, 5) == []
        doc = reader.get_document(TENANT, "d1")
        assert doc is not None and doc.status == DocumentStatus.DELETED
    finally:
        reader.close()


def _churn(index: SqliteSearchIndex, rounds: int, dimension: int = 8) -> None:
    rng = np.random.default_rng(0)
    for r in range(rounds):
        doc_id = f"d{r % 7}"
        if r % 5 == 4:
            index.delete_document(TENANT, doc_id)
            continue
        count = int(rng.integers(1, 40))
        vectors = [rng.normal(size=dimension).tolist() for _ in range(count)]
        index_doc(
            index,
            doc_id,
            [f"text {i}" for i in range(count)],
            vectors,
            version=f"v{r}",
            metadata={"round": r % 3},
        )


@pytest.mark.parametrize("window", [1000, 2])  # 2: the reader falls behind the deletion log
def test_catching_up_gives_the_same_results_as_a_fresh_load(root: Path, window: int) -> None:
    writer = SqliteSearchIndex(root, tombstone_window=window)
    reader = SqliteSearchIndex(root)
    try:
        rng = np.random.default_rng(1)
        for step in range(12):
            _churn(writer, 9 + step)
            fresh = SqliteSearchIndex(root)
            for _ in range(3):
                query = rng.normal(size=8).tolist()
                for filters in (None, {"metadata.round": 1}):
                    expected = fresh.vector_search(TENANT, query, 10, filters)
                    assert reader.vector_search(TENANT, query, 10, filters) == expected
            fresh.close()
    finally:
        writer.close()
        reader.close()


def test_many_deleted_rows_are_compacted(index: SqliteSearchIndex) -> None:
    rng = np.random.default_rng(2)
    vectors = [rng.normal(size=8).tolist() for _ in range(1500)]
    index_doc(index, "big", [f"row {i}" for i in range(1500)], vectors)
    index_doc(index, "small", ["kept"], [vectors[0]])
    assert len(index.vector_search(TENANT, vectors[0], 2000)) == 1501
    index.delete_document(TENANT, "big")
    assert ids(index.vector_search(TENANT, vectors[0], 2000)) == ["small:v1:0"]
    index_doc(index, "big", ["back"], [vectors[1]], version="v2")
    assert ids(index.vector_search(TENANT, vectors[1], 1)) == ["big:v2:0"]


def test_vectors_must_match_the_index_dimension(index: SqliteSearchIndex) -> None:
    index_doc(index, "d1", ["text"])
    with pytest.raises(ValueError, match="dimensions"):
        index.vector_search(TENANT, [1.0, 0.0], 5)
    index.upsert_document(record("d2"))
    with pytest.raises(ValueError, match="dimensions"):
        index.replace_chunks(TENANT, "d2", "v1", make_chunks("d2", "v1", ["x"], [[1.0, 0.0]]))
    doc = index.get_document(TENANT, "d2")
    assert doc is not None and doc.status == DocumentStatus.FETCHED  # rolled back
    with pytest.raises(ValueError, match="NaN"):
        index.vector_search(TENANT, [float("nan")] * 384, 5)


def test_replace_chunks_checks_its_input(index: SqliteSearchIndex) -> None:
    index.upsert_document(record("d1"))
    with pytest.raises(ValueError, match="belongs to"):
        index.replace_chunks(TENANT, "d1", "v1", make_chunks("d2", "v1", ["x"]))
    with pytest.raises(ValueError, match="duplicate"):
        index.replace_chunks(TENANT, "d1", "v1", make_chunks("d1", "v1", ["x"]) * 2)
    with pytest.raises(TypeError, match="unknown"):
        index.replace_chunks(TENANT, "d1", "v1", [], colour="red")
    assert index.keyword_search(TENANT, "x", 5) == []


def test_a_closed_index_refuses_calls(root: Path) -> None:
    index = SqliteSearchIndex(root)
    index_doc(index, "d1", ["text"])
    index.close()
    with pytest.raises(RuntimeError, match="closed"):
        index.keyword_search(TENANT, "text", 5)


def test_threads_share_one_matrix_safely(index: SqliteSearchIndex) -> None:
    """Many threads load and search the same tenant at once while a writer swaps."""
    rng = np.random.default_rng(3)
    vectors = [rng.normal(size=16).tolist() for _ in range(200)]
    index_doc(index, "d1", [f"t{i}" for i in range(200)], vectors)
    errors: list[BaseException] = []

    def search() -> None:
        try:
            for i in range(30):
                hits = index.vector_search(TENANT, vectors[i], 1)
                assert hits and hits[0].doc_id in {"d1", "d2"}
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=search) for _ in range(8)]
    for thread in threads:
        thread.start()
    for round_ in range(10):
        index_doc(index, "d2", ["x"], [vectors[round_]], version=f"v{round_}")
    for thread in threads:
        thread.join()
    assert errors == []


def _reader_process(root: str, queue: Any) -> None:
    """Runs in another process: searches until told to stop, reports mixed result sets."""
    index = SqliteSearchIndex(Path(root))
    base = unit(7)
    bad, seen = 0, set()
    while True:
        for hits in (
            index.vector_search(TENANT, base, 20),
            index.keyword_search(TENANT, "zebra", 20),
        ):
            versions = {h.chunk_id.split(":")[1] for h in hits}
            bad += len(versions) != 1 or len(hits) != 4
            seen |= versions
        Path(root, "ready").touch()
        if Path(root, "stop").exists():
            break
    queue.put((bad, len(seen)))
    index.close()


@pytest.mark.integration
def test_a_reader_process_never_sees_a_half_swapped_document(
    index: SqliteSearchIndex, root: Path
) -> None:
    base = unit(7)

    def swap_in(version: str) -> None:
        index.upsert_document(record("d1", version))
        vectors = [unit(i) for i in range(4)]
        vectors = [(np.asarray(base) + 0.2 * np.asarray(v)).tolist() for v in vectors]
        chunks = make_chunks("d1", version, [f"zebra {version} {i}" for i in range(4)], vectors)
        assert index.replace_chunks(TENANT, "d1", version, chunks)

    swap_in("r0")
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_reader_process, args=(str(root), queue))
    process.start()
    deadline = time.monotonic() + 60
    while not (root / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    for round_ in range(1, 150):
        swap_in(f"r{round_}")
    (root / "stop").touch()
    bad, versions = queue.get(timeout=60)
    process.join(timeout=60)
    assert bad == 0
    assert versions > 1


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('parental "leave" AND NEAR(x*') == '"parental" OR "leave" OR "near" OR "x"'
    assert fts_query("the and of") == '"the" OR "and" OR "of"'  # only stop words: keep them
    assert fts_query(" -*^() ") is None


METADATA: list[dict[str, Any]] = [
    {},
    {"k": "US"},
    {"k": "1"},
    {"k": 1},
    {"k": 1.0},
    {"k": 2.5},
    {"k": True},
    {"k": False},
    {"k": None},
    {"k": ["US"]},
    {"k": {"US": 1}},
    {"k": "2024-05-01"},
    {"k": "2024-05-01T10:00:00Z"},
]
FILTERS: list[Any] = [
    "US",
    "1",
    1,
    1.0,
    True,
    False,
    None,
    ["US", 1],
    [True],
    [],
    {"gte": "2024-05-01"},
    {"lt": "2024-05-01T00:00:00Z"},
    {"gte": 1},
    {"gt": 1, "lte": 2.5},
    {"lt": "2"},
]


@pytest.mark.parametrize("value", FILTERS, ids=repr)
def test_sql_filters_agree_with_the_in_memory_ones(value: Any) -> None:
    """Keyword search filters in SQL, vector search in Python: both must pick the same rows."""
    where = parse_filters({"metadata.k": value})
    clause, params = where.sql("t")
    with sqlite3.connect(":memory:") as conn:
        conn.execute("CREATE TABLE t (id INTEGER, doc_id, source_id, media_type, metadata TEXT)")
        conn.executemany(
            "INSERT INTO t VALUES (?, 'd', 's', 'm', ?)",
            [(i, json.dumps(m)) for i, m in enumerate(METADATA)],
        )
        in_sql = [i for (i,) in conn.execute(f"SELECT id FROM t WHERE {clause}", params)]
    in_python = [i for i, m in enumerate(METADATA) if where.matches(DocAttrs("d", "s", "m", m))]
    assert in_sql == in_python


def test_date_alias_and_metadata_key_are_the_same_filter(index: SqliteSearchIndex) -> None:
    index_doc(index, "d1", ["Holiday calendar."], metadata={"effective_date": "2024-02-01"})
    index_doc(index, "d2", ["Holiday rota."], metadata={"effective_date": "2022-02-01"})
    for key in ("effective_date", "metadata.effective_date"):
        filters = {key: {"gte": "2024-01-01"}}
        assert doc_ids(index.keyword_search(TENANT, "holiday", 5, filters)) == {"d1"}


def _open_files(name: str) -> int:
    fds = Path("/proc/self/fd")
    return sum(
        1 for fd in fds.iterdir() if Path(os.readlink(fd) if fd.exists() else "").name == name
    )


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_short_lived_threads_leave_no_connections_behind(index: SqliteSearchIndex) -> None:
    """Thread pools retire idle threads; their connections must not pile up."""
    index_doc(index, "d1", ["Holiday calendar."])
    for _ in range(3 * MAX_IDLE_CONNECTIONS):
        thread = threading.Thread(target=index.keyword_search, args=(TENANT, "holiday", 5))
        thread.start()
        thread.join()
    assert _open_files("acme.db") <= MAX_IDLE_CONNECTIONS


def test_a_recreated_file_is_loaded_afresh(root: Path) -> None:
    """Generations of a new file start over: a reader must not mistake its old matrix for newer."""
    reader = SqliteSearchIndex(root)
    writer = SqliteSearchIndex(root)
    for round_ in range(4):
        index_doc(writer, "old", ["Old text."], version=f"v{round_}")
    assert ids(reader.vector_search(TENANT, unit(1), 5)) == ["old:v3:0"]
    writer.close()
    for path in root.glob("acme.db*"):
        path.unlink()
    writer = SqliteSearchIndex(root)
    index_doc(writer, "new", ["New text."])
    reader._idle.clear()  # a fresh connection, as under load when the pool is empty
    result: list[list[str]] = []
    thread = threading.Thread(
        daemon=True, target=lambda: result.append(ids(reader.vector_search(TENANT, unit(1), 5)))
    )
    thread.start()
    thread.join(timeout=10)
    writer.close()
    reader.close()
    assert result == [["new:v1:0"]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("leave", [0, 2]), (["us", "travel"], [0, 1]), ("nope", []), ({"gte": "m"}, [0, 1])],
    ids=repr,
)
def test_list_metadata_matches_when_any_item_does(value: Any, expected: list[int]) -> None:
    rows = [{"tags": ["leave", "us"]}, {"tags": ["travel"]}, {"tags": "leave"}]
    where = parse_filters({"metadata.tags": value})
    clause, params = where.sql("t")
    with sqlite3.connect(":memory:") as conn:
        conn.execute("CREATE TABLE t (id INTEGER, doc_id, source_id, media_type, metadata TEXT)")
        conn.executemany(
            "INSERT INTO t VALUES (?, 'd', 's', 'm', ?)",
            [(i, json.dumps(m)) for i, m in enumerate(rows)],
        )
        in_sql = [i for (i,) in conn.execute(f"SELECT id FROM t WHERE {clause}", params)]
    in_python = [i for i, m in enumerate(rows) if where.matches(DocAttrs("d", "s", "m", m))]
    assert in_sql == in_python == expected
