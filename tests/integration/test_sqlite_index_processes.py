"""The embedded index shared by processes: a reader in another process never sees half a swap."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from datatorag.adapters.index.sqlite import SqliteSearchIndex
from tests.contracts.search_index import TENANT, make_chunks, record, unit

pytestmark = pytest.mark.integration


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


def test_a_reader_process_never_sees_a_half_swapped_document(tmp_path: Path) -> None:
    root = tmp_path / "index"
    index = SqliteSearchIndex(root)
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
    index.close()
    assert bad == 0
    assert versions > 1
