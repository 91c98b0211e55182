"""Tenant isolation while the embedded index drops and reloads tenants' snapshots.

Many tenants hold look-alike documents (the same topic words, vectors near one shared vector, so
a leak would rank well), each marked with a word only its own documents use. A reader whose
snapshot budget fits about two tenants searches them all, from several threads, in shuffled
order, while a writer swaps documents in: every search evicts or reloads someone. No hit may
carry another tenant's marker or document, and while nothing is written every result must be
exactly what an index that never evicts returns.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.adapters.index.sqlite.ann import AnnConfig
from datatorag.domain.models import SearchHit
from tests.contracts.search_index import index_doc, near, unit

pytestmark = pytest.mark.integration

TENANTS = [f"tenant-{i:02d}" for i in range(24)]
DOCS = 3
CHUNKS = 8
THREADS = 6
BASE = unit(99)


def marker(tenant: str) -> str:
    return f"zq{tenant[-2:]}marker"


def texts(tenant: str, doc: int, version: int = 1) -> list[str]:
    return [
        f"Parental leave policy {marker(tenant)} part {i} of document {doc} version {version}."
        for i in range(CHUNKS)
    ]


def vectors(tenant: str, doc: int) -> list[list[float]]:
    seed = TENANTS.index(tenant) * 100 + doc * 10
    return [near(BASE, seed + i, noise=0.5) for i in range(CHUNKS)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eviction") / "index"
    writer = SqliteSearchIndex(root)
    for tenant in TENANTS:
        for doc in range(DOCS):
            index_doc(writer, f"doc{doc}", texts(tenant, doc), vectors(tenant, doc), tenant=tenant)
    writer.close()
    return root


@pytest.fixture(params=["exact", "ann"])
def reader(root: Path, request: pytest.FixtureRequest) -> Iterator[SqliteSearchIndex]:
    """Exact search, or every tenant on an HNSW graph (built in the background, so searches
    meet tenants with and without one; the graph counts in the budget)."""
    ann = AnnConfig(min_chunks=1 if request.param == "ann" else 0)
    probe = SqliteSearchIndex(root, ann=AnnConfig(min_chunks=ann.min_chunks, background=False))
    probe.vector_search(TENANTS[0], BASE, 1)
    per_tenant = probe.snapshot_stats().nbytes
    probe.close()
    index = SqliteSearchIndex(root, snapshot_memory_bytes=int(2.5 * per_tenant), ann=ann)
    yield index
    if request.param == "ann":
        assert index.approximate.answered > 0
    index.close()


def searches(index: SqliteSearchIndex, tenant: str) -> list[list[SearchHit]]:
    return [
        index.keyword_search(tenant, "parental leave policy", 10),
        index.vector_search(tenant, BASE, 10),
        index.vector_search(tenant, BASE, 10, {"doc_id": "doc1"}),
    ]


def foreign(tenant: str, hits: list[SearchHit]) -> list[str]:
    """What in ``hits`` is not the tenant's own."""
    others = [marker(t) for t in TENANTS if t != tenant]
    return [
        h.chunk_id
        for h in hits
        if marker(tenant) not in h.text
        or any(m in h.text for m in others)
        or h.doc_id not in {f"doc{d}" for d in range(DOCS)}
    ]


def run_threads(work: list[list[str]], check: object) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(order: list[str]) -> None:
        try:
            for tenant in order:
                check(tenant)  # type: ignore[operator]
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=(order,)) for order in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return errors


def shuffled_orders(rounds: int) -> list[list[str]]:
    rng = random.Random(7)
    return [rng.sample(TENANTS * rounds, len(TENANTS) * rounds) for _ in range(THREADS)]


def test_results_are_those_of_an_index_that_never_evicts(
    root: Path, reader: SqliteSearchIndex
) -> None:
    unbounded = SqliteSearchIndex(root)
    expected = {tenant: searches(unbounded, tenant) for tenant in TENANTS}
    unbounded.close()
    for tenant, results in expected.items():
        assert all(results) and not any(foreign(tenant, hits) for hits in results)

    def check(tenant: str) -> None:
        assert searches(reader, tenant) == expected[tenant], tenant

    assert run_threads(shuffled_orders(3), check) == []
    stats = reader.snapshot_stats()
    if reader.approximate.config.min_chunks:  # tenants still waiting for a graph are smaller
        assert stats.nbytes <= reader._snapshots.memory_bytes
    else:
        assert stats.tenants <= 3  # two fit, plus the one a search is using
    assert stats.evictions > len(TENANTS) and stats.loads > len(TENANTS)


def test_no_tenant_sees_another_while_snapshots_come_and_go_under_writes(
    root: Path, reader: SqliteSearchIndex
) -> None:
    writer = SqliteSearchIndex(root)
    stop = threading.Event()

    def write() -> None:
        rng = np.random.default_rng(3)
        version = 2
        while not stop.is_set():
            tenant = TENANTS[int(rng.integers(len(TENANTS)))]
            doc = int(rng.integers(DOCS))
            index_doc(
                writer,
                f"doc{doc}",
                texts(tenant, doc, version),
                vectors(tenant, doc),
                version=f"v{version}",
                tenant=tenant,
            )
            version += 1

    def check(tenant: str) -> None:
        for hits in searches(reader, tenant):
            assert hits, tenant
            assert foreign(tenant, hits) == [], tenant
            # One version of each document at a time: a swap is atomic for readers.
            versions: dict[str, set[str]] = {}
            for h in hits:
                versions.setdefault(h.doc_id, set()).add(h.chunk_id.split(":")[1])
            assert all(len(v) == 1 for v in versions.values()), versions

    writing = threading.Thread(target=write)
    writing.start()
    try:
        errors = run_threads(shuffled_orders(2), check)
    finally:
        stop.set()
        writing.join(timeout=60)
        writer.close()
    assert errors == []
    assert reader.snapshot_stats().evictions > 0
