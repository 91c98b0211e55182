"""The embedded ``SqliteSearchIndex`` against the ``SearchIndex`` behaviour suite (what only
it does is tested in ``tests/unit/test_sqlite_index.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.ports import SearchIndex
from tests.contracts.search_index import (
    SearchIndexContract,
    SpaceMigrationContract,
    VectorSpaceContract,
)

pytestmark = pytest.mark.unit


class TestSqliteSearchIndex(SearchIndexContract, VectorSpaceContract, SpaceMigrationContract):
    @pytest.fixture
    def search_index(self, tmp_path: Path) -> Iterator[SearchIndex]:
        index = SqliteSearchIndex(tmp_path / "index")
        yield index
        index.close()
