"""Many small tenants on the embedded index: a process's memory, and search latency of hot and
cold tenants, with and without a snapshot budget (``DATATORAG_SNAPSHOT_MEMORY_MB``).

    .venv/bin/python bench/tenant_snapshots.py            # 1,000 tenants; no budget, 64, 16 MB
    .venv/bin/python bench/tenant_snapshots.py --tenants 200 --searches 2000 --budgets 0 8

Tenants: ``--templates`` template tenants of 2 to 10 documents of 20 chunks (40-200 chunks; text
from the sentences of ``../shared/corpus/truth``, random 384-dimension unit vectors, as
``bench/index_latency.py``), each index file copied to ``tenants / templates`` tenant names (the
embedded index keeps one file per tenant, so a copy is a tenant).

Traffic, one thread: every tenant searched once in shuffled order (each a cold load), then
``--searches`` searches over tenants drawn by Zipf's law (s = 1.1: a few busy tenants, a long
tail). A search is what ``/v1/search`` asks of the index: a keyword query (a dev question) and a
vector query, top 10. It is cold when it loaded its tenant's snapshot from the file (the
cache's load counter moved), hot otherwise. Each budget runs in a fresh process; its memory is
that process's resident set after the run (VmRSS) and its peak (VmHWM), the Python
interpreter, numpy and the stemmer included.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.index_latency import CHUNKS_PER_DOC, TENANT, build_document, questions, sentences
from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.log import configure

ZIPF_S = 1.1


def make_tenants(root: Path, tenants: int, templates: int) -> list[str]:
    """``tenants`` tenant files under ``root``, copies of ``templates`` built ones."""
    pool = sentences()
    rng = np.random.default_rng(0)
    built = root / "templates"
    index = SqliteSearchIndex(built)
    for t in range(templates):
        for d in range(2 + t * 8 // max(templates - 1, 1)):
            build_document(index, rng, pool, d + t * 100, tenant=f"{TENANT}{t}")
    index.close()
    names = [f"tenant{i:04d}" for i in range(tenants)]
    (root / "index").mkdir()
    for i, name in enumerate(names):
        shutil.copyfile(built / f"{TENANT}{i % templates}.db", root / "index" / f"{name}.db")
    return names


def memory_kb() -> dict[str, int]:
    status = Path("/proc/self/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}


def percentiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    cuts = statistics.quantiles(values, n=20)
    return statistics.median(values), cuts[18]


def worker(root: Path, names: list[str], budget_mb: int, searches: int) -> dict[str, Any]:
    """One process's run (see the module docstring); returns its figures."""
    budget = budget_mb * 2**20 if budget_mb else 2**62
    index = SqliteSearchIndex(root / "index", snapshot_memory_bytes=budget)
    asked = [q["question"] for q in questions()]
    rng = random.Random(1)
    vectors = np.random.default_rng(2).normal(size=(64, 384)).astype(np.float32)
    timings: dict[str, list[float]] = {"sweep": [], "hot": [], "cold": []}
    before = memory_kb()["VmRSS"]  # the interpreter, numpy, the stemmer: no tenant yet

    def search(tenant: str, phase: str | None) -> None:
        loads = index.snapshot_stats().loads
        started = time.perf_counter()
        index.keyword_search(tenant, rng.choice(asked), 10)
        index.vector_search(tenant, vectors[rng.randrange(64)].tolist(), 10)
        spent = (time.perf_counter() - started) * 1000
        cold = index.snapshot_stats().loads > loads
        timings[phase or ("cold" if cold else "hot")].append(spent)

    for tenant in rng.sample(names, len(names)):
        search(tenant, "sweep")
    weights = [1 / (rank + 1) ** ZIPF_S for rank in range(len(names))]
    for tenant in rng.choices(names, weights, k=searches):
        search(tenant, None)
    stats = index.snapshot_stats()
    result = {
        "budget_mb": budget_mb,
        "rss_before_kb": before,
        **memory_kb(),
        "snapshots_mb": stats.nbytes / 2**20,
        "tenants_in_memory": stats.tenants,
        "loads": stats.loads,
        "evictions": stats.evictions,
        **{f"{k}_ms": percentiles(v) for k, v in timings.items()},
        "cold_share": len(timings["cold"]) / searches,
    }
    index.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--templates", type=int, default=10)
    parser.add_argument("--searches", type=int, default=5000)
    parser.add_argument("--budgets", type=int, nargs="+", default=[0, 64, 16], help="MB; 0: none")
    parser.add_argument("--worker", nargs=2, metavar=("ROOT", "BUDGET_MB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        configure("bench", "WARNING")  # stdout carries the result alone (loads log at info)
        root = Path(args.worker[0])
        names = json.loads((root / "names.json").read_text())
        print(json.dumps(worker(root, names, int(args.worker[1]), args.searches)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        names = make_tenants(root, args.tenants, args.templates)
        (root / "names.json").write_text(json.dumps(names))
        print(
            f"{len(names):,} tenants from {args.templates} templates "
            f"({CHUNKS_PER_DOC} chunks a document) in {time.perf_counter() - started:.0f} s; "
            f"{args.searches:,} Zipf searches after a sweep of every tenant\n"
        )
        print(
            "| budget | RSS before | RSS after | peak RSS | snapshots | tenants in memory | loads "
            "| evictions "
            "| sweep (cold) p50 / p95 | hot p50 / p95 | cold p50 / p95 | cold share |"
        )
        print("| --- |" + " ---: |" * 11)
        for budget in args.budgets:
            command = [sys.executable, __file__, "--worker", str(root), str(budget)]
            command += ["--searches", str(args.searches)]
            r = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
            label = f"{budget} MB" if budget else "none"

            def pair(key: str, r: dict[str, Any] = r) -> str:
                p50, p95 = r[key]
                return f"{p50:.1f} / {p95:.1f} ms" if p50 == p50 else "-"  # NaN: none

            print(
                f"| {label} | {r['rss_before_kb'] / 1024:.0f} MB | {r['VmRSS'] / 1024:.0f} MB "
                f"| {r['VmHWM'] / 1024:.0f} MB "
                f"| {r['snapshots_mb']:.0f} MB | {r['tenants_in_memory']:,} | {r['loads']:,} "
                f"| {r['evictions']:,} | {pair('sweep_ms')} | {pair('hot_ms')} "
                f"| {pair('cold_ms')} | {r['cold_share']:.1%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
