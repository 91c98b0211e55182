"""The embedded ``SqliteSearchIndex`` against the ``SearchIndex`` behaviour suite (what only
it does is tested in ``tests/unit/test_sqlite_index.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.adapters.index.sqlite.ann import AnnConfig
from datatorag.ports import SearchIndex
from tests.contracts.search_index import (
    TENANT,
    SearchIndexContract,
    SpaceMigrationContract,
    VectorSpaceContract,
    index_doc,
)

pytestmark = pytest.mark.unit


class TestSqliteSearchIndex(SearchIndexContract, VectorSpaceContract, SpaceMigrationContract):
    @pytest.fixture
    def search_index(self, tmp_path: Path) -> Iterator[SearchIndex]:
        index = SqliteSearchIndex(tmp_path / "index")
        yield index
        index.close()


class TestSqliteSearchIndexApproximate(SearchIndexContract):
    """The same behaviour with every tenant on an HNSW graph (the size threshold forced to one
    chunk, graphs built on the searching thread so that the graph answers from the first
    search)."""

    @pytest.fixture
    def search_index(self, tmp_path: Path) -> Iterator[SearchIndex]:
        index = SqliteSearchIndex(tmp_path / "index", ann=AnnConfig(min_chunks=1, background=False))
        yield index
        index.close()

    def test_the_graph_answers(self, search_index: SearchIndex) -> None:
        assert isinstance(search_index, SqliteSearchIndex)
        chunks = index_doc(search_index, "d1", ["one", "two", "three"])
        hits = search_index.vector_search(TENANT, chunks[1].vector, 2)
        assert hits[0].chunk_id == chunks[1].chunk_id
        assert search_index.approximate.answered == search_index.approximate.asked == 1
        assert search_index.snapshot_stats().graphs == 1
