"""What only the embedded index does: one file per tenant, snapshots that catch up with other
processes' writes, compaction, migrations of older files, connection pooling, filters."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from datatorag import wiring
from datatorag.adapters.index.sqlite import SqliteSearchIndex, bm25
from datatorag.adapters.index.sqlite.connections import MAX_IDLE_CONNECTIONS, MAX_IDLE_TOTAL
from datatorag.adapters.index.sqlite.schema import SCHEMA_VERSION
from datatorag.adapters.index.sqlite.snapshot import keyword_top_k
from datatorag.adapters.index.sqlite.snapshot_cache import CacheStats
from datatorag.adapters.index.sqlite.store import known_terms
from datatorag.domain.filters import DocAttrs, Filter, parse_filters
from datatorag.domain.models import DocumentStatus
from datatorag.ports import SearchIndex
from datatorag.settings import Settings
from tests.contracts.search_index import (
    TENANT,
    doc_ids,
    ids,
    index_doc,
    make_chunks,
    record,
    unit,
)

pytestmark = pytest.mark.unit


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


WORDS = [
    *("leave", "pension", "payroll", "holiday", "bonus"),
    *("overtime", "training", "travel", "equity", "notice"),
]


def _churn(index: SqliteSearchIndex, rounds: int, dimension: int = 8) -> None:
    rng = np.random.default_rng(0)
    for r in range(rounds):
        doc_id = f"d{r % 7}"
        if r % 5 == 4:
            index.delete_document(TENANT, doc_id)
            continue
        count = int(rng.integers(1, 40))
        vectors = [rng.normal(size=dimension).tolist() for _ in range(count)]
        words = rng.choice(WORDS, size=(count, 6))
        index_doc(
            index,
            doc_id,
            [f"text {i} {' '.join(w)}" for i, w in enumerate(words)],
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
                words = " ".join(rng.choice(WORDS, size=2))
                for filters in (None, {"metadata.round": 1}):
                    expected = fresh.vector_search(TENANT, query, 10, filters)
                    assert reader.vector_search(TENANT, query, 10, filters) == expected
                    expected = fresh.keyword_search(TENANT, words, 10, filters)
                    assert expected  # scores depend on every live row: equal means in step
                    assert reader.keyword_search(TENANT, words, 10, filters) == expected
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
    assert index.keyword_search(TENANT, "row", 10) == []
    index_doc(index, "big", ["back row"], [vectors[1]], version="v2")
    assert ids(index.vector_search(TENANT, vectors[1], 1)) == ["big:v2:0"]
    assert sorted(ids(index.keyword_search(TENANT, "row kept", 10))) == ["big:v2:0", "small:v1:0"]
    snapshot = index._snapshots.peek(TENANT)
    assert snapshot is not None and snapshot.size == 2  # compacted: postings were renumbered


def test_deleted_chunks_leave_the_keyword_statistics(root: Path, tmp_path: Path) -> None:
    """IDF and average length count live chunks only: after a delete, scores are those of an
    index that never held the deleted document."""
    texts = {
        "a": ["Pension rules for staff.", "Pension pension contributions."],
        "b": ["Holiday pension note.", "Travel rules."],
        "c": ["Pension and holiday.", "Notice period rules and many more words here."],
    }
    churned, clean = SqliteSearchIndex(root), SqliteSearchIndex(tmp_path / "clean")
    try:
        for doc_id, chunks in texts.items():
            index_doc(churned, doc_id, chunks)
            if doc_id != "b":
                index_doc(clean, doc_id, chunks)
        before = churned.keyword_search(TENANT, "pension rules", 10)
        churned.delete_document(TENANT, "b")
        after = churned.keyword_search(TENANT, "pension rules", 10)
        expected = clean.keyword_search(TENANT, "pension rules", 10)
        assert [(h.chunk_id, h.score) for h in after] == [(h.chunk_id, h.score) for h in expected]
        assert {h.chunk_id: h.score for h in before}["a:v1:0"] != after[0].score
    finally:
        churned.close()
        clean.close()


def test_an_older_snapshot_is_undisturbed_by_newer_ones(
    index: SqliteSearchIndex, root: Path
) -> None:
    """Threads still ranking an older generation see it unchanged after appends, deletes and a
    compaction (no buffer is written below an older snapshot's size)."""
    rng = np.random.default_rng(4)
    texts = [f"pension {' '.join(rng.choice(WORDS, 5))}" for _ in range(50)]
    index_doc(index, "gone", texts[:10])
    index_doc(index, "old", texts)
    index.keyword_search(TENANT, "pension", 1)  # loads a snapshot
    index.delete_document(TENANT, "gone")
    index.keyword_search(TENANT, "pension", 1)  # catches up: 10 dead rows
    old = index._snapshots.peek(TENANT)
    assert old is not None and old.dead == 10
    with sqlite3.connect(root / "acme.db") as conn:
        query = list(known_terms(conn, bm25.query_terms("pension leave")).values())
    conn.close()
    first, matrix = keyword_top_k(old, query, 20, Filter()), old.matrix.copy()
    assert len(first[0]) == 20
    index.delete_document(TENANT, "old")  # a generation of deletes only
    assert index.keyword_search(TENANT, "pension", 1) == []
    for round_ in range(40):  # swaps append rows after old.size; their deletes compact
        index_doc(index, "churn", [f"leave {i}" for i in range(60)], version=f"v{round_}")
        index.keyword_search(TENANT, "leave", 1)
    latest = index._snapshots.peek(TENANT)
    assert latest is not None and latest.size < 50 + 40 * 60  # compacted at least once
    assert keyword_top_k(old, query, 20, Filter()) == first
    assert np.array_equal(old.matrix, matrix)


def test_a_version_1_file_is_migrated(root: Path) -> None:
    """Files written with the FTS5 index lose it and gain the stored term counts."""
    root.mkdir(parents=True)
    with sqlite3.connect(root / "acme.db") as conn:
        conn.executescript(V1_SCHEMA)
        conn.execute(
            "INSERT INTO documents VALUES ('d1', 'handbook', 'file:///d1.pdf', 'Pension policy', "
            "'application/pdf', 'v1', 'indexed', NULL, 10, 1, 2, '{}', '2024-01-01T00:00:00')"
        )
        for i, (heading, text) in enumerate([("Rules", "Staff pay in."), ("Dates", "Pay day.")]):
            conn.execute(
                "INSERT INTO chunks (doc_id, chunk_id, ordinal, source_id, media_type, metadata, "
                "pages, token_count) VALUES ('d1', ?, ?, 'handbook', 'application/pdf', '{}', "
                "'[1]', 3)",
                (f"d1:v1:{i}", i),
            )
            conn.execute(
                "INSERT INTO chunk_texts VALUES (?, 'Pension policy', ?, ?)", (i + 1, heading, text)
            )
            conn.execute(
                "INSERT INTO chunk_vectors VALUES (?, ?)",
                (i + 1, np.asarray(unit(i), np.float32).tobytes()),
            )
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    index = SqliteSearchIndex(root)
    try:
        hits = index.keyword_search(TENANT, "pension dates", 5)
        assert [h.chunk_id for h in hits] == ["d1:v1:1", "d1:v1:0"]  # title in both, heading
        assert ids(index.vector_search(TENANT, unit(0), 1)) == ["d1:v1:0"]
        with sqlite3.connect(root / "acme.db") as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
            assert not {n for n in tables if "fts" in n} and "chunk_terms" in tables
        conn.close()
        index_doc(index, "d2", ["Pension dates again."])
        index.delete_document(TENANT, "d1")
        assert doc_ids(index.keyword_search(TENANT, "pension dates", 5)) == {"d2"}
        with sqlite3.connect(root / "acme.db") as conn:
            assert conn.execute("SELECT count(*) FROM chunk_terms").fetchone() == (1,)
        conn.close()
    finally:
        index.close()


def test_a_version_2_file_is_retokenised(root: Path) -> None:
    """Version 2 stored the stems of FTS5's Porter ("technolog"); opening such a file stores
    the current ones ("technologi"), which today's queries look for."""
    index = SqliteSearchIndex(root)
    index_doc(index, "d1", ["Technology budget.", "Other text."])
    index.close()
    with sqlite3.connect(root / "acme.db") as conn:
        conn.execute("INSERT INTO terms (term) VALUES ('technolog')")
        old, new = (known_terms(conn, [t])[t] for t in ("technolog", "technologi"))
        row, blob = conn.execute("SELECT id, postings FROM chunk_terms ORDER BY id").fetchone()
        postings = np.frombuffer(blob, bm25.POSTING).copy()
        postings["term"][postings["term"] == new] = old  # as version 2 stored the text
        conn.execute("DELETE FROM chunk_terms WHERE id = ?", (row,))
        conn.execute("INSERT INTO chunk_terms VALUES (?, 4, ?)", (row, postings.tobytes()))
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    index = SqliteSearchIndex(root)
    try:
        assert ids(index.keyword_search(TENANT, "technology", 5)) == ["d1:v1:0"]
        with sqlite3.connect(root / "acme.db") as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            stored = conn.execute("SELECT postings FROM chunk_terms WHERE id = ?", (row,))
            terms = np.frombuffer(stored.fetchone()[0], bm25.POSTING)["term"]
            assert new in terms and old not in terms
            assert conn.execute("SELECT count(*) FROM chunk_terms").fetchone() == (2,)
        conn.close()
    finally:
        index.close()


def test_a_newer_file_is_refused(root: Path) -> None:
    root.mkdir(parents=True)
    with sqlite3.connect(root / "acme.db") as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    index = SqliteSearchIndex(root)
    try:
        with pytest.raises(RuntimeError, match="schema version"):
            index.keyword_search(TENANT, "pension", 5)
    finally:
        index.close()


# The version-1 schema (FTS5 external content over chunk_texts), as that release wrote it.
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta VALUES ('generation', 0), ('tombstone_floor', 0), ('dimension', 384),
    ('epoch', 7);
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, source_id TEXT NOT NULL, source_uri TEXT NOT NULL,
    title TEXT NOT NULL, media_type TEXT NOT NULL, version TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT, size_bytes INTEGER NOT NULL, page_count INTEGER, chunk_count INTEGER NOT NULL,
    metadata TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX documents_by_uri ON documents (source_uri, doc_id);
CREATE INDEX documents_by_source ON documents (source_id, source_uri, doc_id);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL, chunk_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL, source_id TEXT NOT NULL, media_type TEXT NOT NULL,
    metadata TEXT NOT NULL, pages TEXT NOT NULL, token_count INTEGER NOT NULL,
    UNIQUE (doc_id, chunk_id)
);
CREATE TABLE chunk_texts (
    id INTEGER PRIMARY KEY, title TEXT NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL
);
CREATE TABLE chunk_vectors (id INTEGER PRIMARY KEY, vector BLOB NOT NULL);
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    title, heading, text, content='chunk_texts', content_rowid='id',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TABLE chunk_tombstones (chunk_rowid INTEGER PRIMARY KEY, generation INTEGER NOT NULL);
CREATE INDEX chunk_tombstones_by_generation ON chunk_tombstones (generation);
CREATE TRIGGER chunk_texts_insert AFTER INSERT ON chunk_texts BEGIN
    INSERT INTO chunks_fts (rowid, title, heading, text)
    VALUES (new.id, new.title, new.heading, new.text);
END;
CREATE TRIGGER chunk_texts_delete AFTER DELETE ON chunk_texts BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, title, heading, text)
    VALUES ('delete', old.id, old.title, old.heading, old.text);
END;
CREATE TRIGGER chunks_delete AFTER DELETE ON chunks BEGIN
    DELETE FROM chunk_texts WHERE id = old.id;
    DELETE FROM chunk_vectors WHERE id = old.id;
    INSERT INTO chunk_tombstones
    VALUES (old.id, (SELECT value FROM meta WHERE key = 'generation'));
END;
CREATE TRIGGER chunks_immutable BEFORE UPDATE ON chunks BEGIN
    SELECT RAISE(ABORT, 'chunks are immutable: replace them');
END;
"""


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
# Each filter value and the METADATA rows it matches (the semantics in filters.py's docstring).
FILTERS: list[tuple[Any, list[int]]] = [
    ("US", [1, 9]),
    ("1", [2]),
    (1, [3, 4, 6]),
    (1.0, [3, 4, 6]),
    (True, [3, 4, 6]),
    (False, [7]),
    (None, [0, 8]),
    (["US", 1], [1, 3, 4, 6, 9]),
    ([True], [3, 4, 6]),
    ([], []),
    ({"gte": "2024-05-01"}, [1, 9, 11, 12]),
    ({"lt": "2024-05-01T00:00:00Z"}, [2, 11]),
    ({"gte": 1}, [3, 4, 5, 6]),
    ({"gt": 1, "lte": 2.5}, [5]),
    ({"lt": "2"}, [2]),
]


@pytest.mark.parametrize(("value", "expected"), FILTERS, ids=repr)
def test_filters_compare_strings_with_strings_and_numbers_with_numbers(
    value: Any, expected: list[int]
) -> None:
    where = parse_filters({"metadata.k": value})
    matched = [i for i, m in enumerate(METADATA) if where.matches(DocAttrs("d", "s", "m", m))]
    assert matched == expected


@pytest.mark.parametrize(("value", "expected"), FILTERS, ids=repr)
def test_both_searches_apply_filters_alike(
    index: SqliteSearchIndex, value: Any, expected: list[int]
) -> None:
    for i, metadata in enumerate(METADATA):
        index_doc(index, f"d{i:02d}", ["Filtered pension rules."], [unit(i)], metadata=metadata)
    filters = {"metadata.k": value}
    keyword = index.keyword_search(TENANT, "pension", 50, filters)
    vector = index.vector_search(TENANT, unit(0), 50, filters)
    assert sorted(doc_ids(keyword)) == sorted(doc_ids(vector)) == [f"d{i:02d}" for i in expected]


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
    reader._pool._idle.clear()  # a fresh connection, as under load when the pool is empty
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
    matched = [i for i, m in enumerate(rows) if where.matches(DocAttrs("d", "s", "m", m))]
    assert matched == expected


# -- bounded memory ------------------------------------------------------------------------------


def _tenants_with_one_document(root: Path, count: int) -> list[str]:
    writer = SqliteSearchIndex(root)
    tenants = [f"t{i:03d}" for i in range(count)]
    for tenant in tenants:
        index_doc(writer, "d1", [f"Holiday rules of {tenant}.", "Pay days."], tenant=tenant)
    writer.close()
    return tenants


def test_least_recently_searched_tenants_leave_memory_past_the_budget(root: Path) -> None:
    a, b, c, d = _tenants_with_one_document(root, 4)
    probe = SqliteSearchIndex(root)
    probe.keyword_search(a, "holiday", 5)
    one = probe.snapshot_stats().nbytes
    expected = {t: probe.keyword_search(t, "holiday", 5) for t in (a, b, c, d)}
    probe.close()
    assert one > 2 * 384 * 4  # two vectors of 384 float32, at least

    index = SqliteSearchIndex(root, snapshot_memory_bytes=int(2.5 * one))
    try:
        for tenant in (a, b, c):
            assert index.keyword_search(tenant, "holiday", 5) == expected[tenant]
        assert index._snapshots.peek(a) is None  # the least recent went
        assert index.snapshot_stats() == CacheStats(tenants=2, nbytes=2 * one, loads=3, evictions=1)
        index.vector_search(b, unit(0), 1)  # b is now more recent than c
        assert index.keyword_search(d, "holiday", 5) == expected[d]
        assert index._snapshots.peek(c) is None and index._snapshots.peek(b) is not None
        assert index.keyword_search(a, "holiday", 5) == expected[a]  # reloaded from its file
        assert index.snapshot_stats().loads == 5
    finally:
        index.close()


def test_a_tenant_larger_than_the_budget_is_still_searched(root: Path) -> None:
    a, b = _tenants_with_one_document(root, 2)
    index = SqliteSearchIndex(root, snapshot_memory_bytes=1)
    try:
        for tenant in (a, b, a):
            assert ids(index.keyword_search(tenant, "holiday", 5)) == ["d1:v1:0"]
        stats = index.snapshot_stats()
        assert (stats.tenants, stats.loads, stats.evictions) == (1, 3, 2)
    finally:
        index.close()


def test_a_swap_in_an_evicted_tenant_is_seen_on_reload(root: Path) -> None:
    a, b = _tenants_with_one_document(root, 2)
    reader = SqliteSearchIndex(root, snapshot_memory_bytes=1)
    writer = SqliteSearchIndex(root)
    try:
        assert ids(reader.keyword_search(a, "holiday", 5)) == ["d1:v1:0"]
        reader.keyword_search(b, "holiday", 5)  # evicts a
        index_doc(writer, "d1", ["Holiday rules, second edition."], version="v2", tenant=a)
        assert ids(reader.keyword_search(a, "holiday", 5)) == ["d1:v2:0"]
    finally:
        reader.close()
        writer.close()


def test_the_kept_totals_match_a_recount_while_tenants_come_and_go(root: Path) -> None:
    """``snapshot_stats`` keeps its totals as snapshots load, catch up and leave (it is read per
    search, so it never sums); threads searching and a writer swapping must not skew them."""
    tenants = _tenants_with_one_document(root, 12)
    probe = SqliteSearchIndex(root)
    probe.keyword_search(tenants[0], "holiday", 5)
    one = probe.snapshot_stats().nbytes
    probe.close()
    index = SqliteSearchIndex(root, snapshot_memory_bytes=int(4.5 * one))
    writer = SqliteSearchIndex(root)
    errors: list[BaseException] = []

    def search(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(150):
                index.keyword_search(tenants[rng.integers(len(tenants))], "holiday", 5)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=search, args=(seed,)) for seed in range(4)]
    try:
        for thread in threads:
            thread.start()
        for version in range(2, 8):  # swaps: resident snapshots catch up and grow
            index_doc(
                writer, "d1", ["Holiday rules."] * version, version=f"v{version}", tenant=tenants[1]
            )
        for thread in threads:
            thread.join()
        assert not errors
        resident = [s.snapshot for s in index._snapshots._slots.values() if s.snapshot]
        stats = index.snapshot_stats()
        assert (stats.tenants, stats.nbytes) == (len(resident), sum(s.nbytes for s in resident))
        assert stats.nbytes <= 4.5 * one * 2  # within the budget but for the one in use
        assert stats.loads - stats.evictions == stats.tenants
    finally:
        index.close()
        writer.close()


def test_each_load_is_logged_with_what_it_cost_and_evicted(root: Path) -> None:
    a, b = _tenants_with_one_document(root, 2)
    index = SqliteSearchIndex(root, snapshot_memory_bytes=1)
    try:
        with capture_logs() as logs:
            index.keyword_search(a, "holiday", 5)
            index.keyword_search(a, "holiday", 5)  # resident: no load
            index.vector_search(b, unit(0), 1)  # evicts a
    finally:
        index.close()
    loads = [e for e in logs if e["event"] == "index.snapshot_loaded"]
    assert [(e["tenant"], e["chunks"], e["evicted"], e["loads"]) for e in loads] == [
        (a, 2, 0, 1),
        (b, 2, 1, 2),
    ]
    assert all(e["ms"] >= 0 and e["pid"] == os.getpid() for e in loads)
    assert "Holiday" not in repr(loads)  # counts and names, never document text


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_idle_connections_are_bounded_across_tenants(root: Path) -> None:
    """Each tenant keeps a few idle connections; a thousand tenants must not keep thousands."""
    tenants = _tenants_with_one_document(root, MAX_IDLE_TOTAL + 16)
    index = SqliteSearchIndex(root)
    try:
        for tenant in tenants:
            assert index.keyword_search(tenant, "holiday", 5)
        open_files = sum(_open_files(f"{t}.db") for t in tenants)
        assert open_files == MAX_IDLE_TOTAL
        assert _open_files(f"{tenants[-1]}.db") == 1  # the most recent kept theirs
        assert _open_files(f"{tenants[0]}.db") == 0
    finally:
        index.close()


def test_the_budget_comes_from_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, snapshot_memory_mb=3)
    index = wiring.search_index(settings)
    try:
        assert isinstance(index, SqliteSearchIndex)
        assert index._snapshots.memory_bytes == 3 * 2**20
    finally:
        index.close()
    assert Settings.model_fields["snapshot_memory_mb"].default == 512


def test_a_version_3_file_gains_ocr_pages_and_keeps_its_chunks(root: Path) -> None:
    """Version 4 added chunks.ocr_pages: a version-3 file gets the column, its chunks none."""
    index = SqliteSearchIndex(root)
    index_doc(index, "d1", ["Technology budget.", "Other text."])
    index.close()
    with sqlite3.connect(root / "acme.db") as conn:
        conn.execute("DROP TRIGGER chunks_immutable")
        conn.execute("ALTER TABLE chunks DROP COLUMN ocr_pages")
        conn.execute("PRAGMA user_version = 3")
    conn.close()
    index = SqliteSearchIndex(root)
    try:
        hits = index.keyword_search(TENANT, "technology", 5)
        assert ids(hits) == ["d1:v1:0"] and hits[0].ocr_pages == []
        with sqlite3.connect(root / "acme.db") as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        conn.close()
    finally:
        index.close()
