"""A thousand tenants behind the real query API: each API process's memory against its snapshot
budget, and ``/v1/search`` latency of hot and cold tenants under 32 concurrent clients, with the
same load on one tenant as the baseline, in the same run.

    .venv/bin/python bench/tenants_api.py                   # 1,000 tenants (make bench)
    .venv/bin/python bench/tenants_api.py --tenants 100 --warmup-s 10 --duration-s 30
    .venv/bin/python bench/tenants_api.py --data-dir DIR    # reuse DIR's ingested corpus/tenants

The stack: every service a process (``bench.harness.running_stack``), on the embedded default
with the default snapshot budget (``DATATORAG_SNAPSHOT_MEMORY_MB``) and API workers.

Tenants: the corpus's PDFs are ingested once through the pipeline into tenant ``corpus``; each
of ``--tenants`` tenants then gets a distinct random subset of 20-150 of those documents (past
the corpus's 136, second copies under ``<doc id>-copy-1``), their chunks and real embeddings
copied through the ``SearchIndex`` port (``upsert_document`` + ``replace_chunks``, as the
embedder-client writes), so every tenant's BM25 statistics differ.

Traffic: ``--clients`` concurrent HTTP clients, each with its tenant's API key, pause a random
(exponential) think time of mean ``--think-ms`` between requests (0: back to back) and search
hybrid, top 10, a dev question made unique by trailing whitespace (as ``bench/load.py``), so every
search embeds its question on the embedding endpoint: no cache answers it. Tenants are drawn by
Zipf's law (s = 1.1, ranks shuffled over tenants: a few busy tenants, a long tail). Phase
``one tenant`` sends the same load to one tenant of median size; the API is then restarted and
phase ``many tenants`` spreads it over all of them. Requests of the first ``--warmup-s`` seconds
are not counted in latencies.

Cold or hot: a search is cold when its request loaded its tenant's snapshot from the file; the
API's log says so (``index.snapshot_loaded`` carries the request id, which the client sets).
Memory: VmRSS of each API worker process sampled every half second, its VmHWM (peak) and VmRSS
at the end. The machine's load average is recorded: latencies are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import multiprocessing
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import CORPUS, ingest, questions, running_stack
from bench.load import chunks_of, copy_chunk_id, indexed_documents, process_cpu_s, whitespace
from datatorag import wiring
from datatorag.adapters.index.sqlite import bm25
from datatorag.domain.models import DocumentRecord, DocumentStatus, IndexedChunk
from datatorag.ports import SearchIndex
from datatorag.settings import Settings
from datatorag_cli.stack import Stack
from datatorag_query_api.bootstrap import key_store

SOURCE = "corpus"  # the tenant the corpus is ingested into once
ZIPF_S = 1.1
MIN_DOCS, MAX_DOCS = 20, 150
TOP_K = 10
SAMPLE_S = 0.5


# -- tenants ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Library:
    """The ingested corpus: documents and their chunks with vectors, as the index holds them."""

    docs: list[DocumentRecord]
    chunks: dict[str, list[dict[str, Any]]]  # doc id -> chunks


def ingest_corpus(settings: Settings) -> tuple[Library, float]:
    index = wiring.search_index(settings)
    seconds = 0.0
    if not indexed_documents(index, SOURCE):  # a reused --data-dir keeps it
        docs, seconds = ingest(settings, CORPUS / "pdf", SOURCE)
        failed = [d.source_uri for d in docs if d.status != DocumentStatus.INDEXED]
        if failed:
            raise SystemExit(f"ingestion failed for {failed}")
    docs = indexed_documents(index, SOURCE)
    index.close()
    path = settings.data_dir / "index" / f"{SOURCE}.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        chunks = {d.doc_id: chunks_of(db, d.doc_id) for d in docs}
    return Library(docs, chunks), seconds


def tenant_plans(library: Library, tenants: int, seed: int) -> dict[str, list[tuple[int, int]]]:
    """Tenant name -> its (document number, copy) pairs: 20-150 documents, a distinct subset."""
    rng = random.Random(seed)
    pool = len(library.docs)
    plans = {}
    for t in range(tenants):
        size = rng.randint(MIN_DOCS, MAX_DOCS)
        picked = [(d, 0) for d in rng.sample(range(pool), min(size, pool))]
        picked += [(d, 1) for d in rng.sample(range(pool), max(0, size - pool))]
        plans[f"tenant{t:04d}"] = picked
    return plans


_LIBRARY: Library | None = None  # the forked writers' copy


def write_tenant(root: Path, tenant: str, plan: list[tuple[int, int]]) -> int:
    """One tenant's documents and chunks through the port; the number of chunks written."""
    from datatorag.adapters.index.sqlite import SqliteSearchIndex

    assert _LIBRARY is not None
    index = SqliteSearchIndex(root)
    written = 0
    for number, copy in plan:
        doc = _LIBRARY.docs[number]
        written += copy_document(index, doc, _LIBRARY.chunks[doc.doc_id], tenant, copy)
    index.close()
    return written


def copy_document(
    index: SearchIndex, doc: DocumentRecord, chunks: list[dict[str, Any]], tenant: str, copy: int
) -> int:
    doc_id = doc.doc_id + (f"-copy-{copy}" if copy else "")
    update = {"tenant": tenant, "doc_id": doc_id, "status": DocumentStatus.FETCHED}
    update |= {"chunk_count": 0, "source_uri": doc.source_uri + (f"#copy-{copy}" if copy else "")}
    index.upsert_document(doc.model_copy(update=update))
    copied = [
        IndexedChunk(
            **{**c, "doc_id": doc_id, "chunk_id": copy_chunk_id(c["chunk_id"], doc.doc_id, doc_id)}
        )
        for c in chunks
    ]
    index.replace_chunks(tenant, doc_id, doc.version, copied)
    return len(copied)


def build_tenants(
    settings: Settings, library: Library, plans: dict[str, list[tuple[int, int]]], jobs: int
) -> tuple[int, float]:
    """Every tenant's index file (skipped when a reused data dir already holds that plan)."""
    global _LIBRARY
    root = settings.data_dir / "index"
    marker = settings.data_dir / "tenants.json"
    wanted = json.dumps(plans, sort_keys=True)
    started = time.perf_counter()
    if marker.exists() and marker.read_text() == wanted:
        return -1, 0.0
    for old in root.glob("tenant[0-9]*.db*"):  # another plan's tenants (and their WAL files)
        old.unlink()
    _LIBRARY = library
    # The same ~1,500 chunk texts are written ~600 times over: the writers count their terms once.
    bm25.column_counts = functools.lru_cache(maxsize=None)(bm25.column_counts)
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        written = sum(pool.starmap(write_tenant, [(root, t, p) for t, p in plans.items()]))
    marker.write_text(wanted)
    return written, time.perf_counter() - started


# -- processes -------------------------------------------------------------------------------


def api_workers(pid: int) -> list[int]:
    """The API's worker processes: uvicorn's spawned children (not multiprocessing's resource
    tracker), or the API process itself when it runs one worker."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != pid:
                continue
            if b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return sorted(found) or [pid]


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM; zeros once the process has exited (a zombie has neither)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        lines = []
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    return {k: int(fields.get(k, "0 kB").split()[0]) for k in ("VmRSS", "VmHWM")}


class Sampler(threading.Thread):
    """Each API worker's VmRSS and the machine's 1-minute load, every ``SAMPLE_S``."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.rss_max = dict.fromkeys(pids, 0)
        self.loads: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_S):
            for pid in self.pids:
                self.rss_max[pid] = max(self.rss_max[pid], memory_kb(pid)["VmRSS"])
            self.loads.append(float(Path("/proc/loadavg").read_text().split()[0]))


# -- traffic ---------------------------------------------------------------------------------


@dataclass
class Sent:
    request_id: str
    tenant: str
    started: float  # seconds since the phase began
    ms: float
    status: int


async def drive(
    url: str,
    keys: dict[str, str],
    weights: list[float],
    asked: list[str],
    args: argparse.Namespace,
    phase: str,
) -> list[Sent]:
    tenants = list(keys)
    rng = random.Random(f"{phase}-{args.seed}")
    sent: list[Sent] = []
    counter, run = iter(range(10**9)), uuid.uuid4().hex[:8]
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    begin = time.perf_counter()
    end = begin + args.warmup_s + args.duration_s
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def client() -> None:
            while time.perf_counter() < end:
                n = next(counter)
                tenant = rng.choices(tenants, weights)[0]
                query = asked[n % len(asked)] + whitespace(n)
                request_id = f"{run}-{phase}-{n}"  # the API's log outlives runs
                started = time.perf_counter()
                try:
                    response = await http.post(
                        "/v1/search",
                        json={"query": query, "top_k": TOP_K, "mode": "hybrid"},
                        headers={"X-API-Key": keys[tenant], "X-Request-ID": request_id},
                    )
                    status = response.status_code
                except httpx.TransportError:  # counted as an error (a worker that died, say)
                    status = 0
                ms = 1000 * (time.perf_counter() - started)
                sent.append(Sent(request_id, tenant, started - begin, ms, status))
                if args.think_ms:
                    await asyncio.sleep(rng.expovariate(1000 / args.think_ms))

        await asyncio.gather(*(client() for _ in range(args.clients)))
    return sent


def loads_logged(stack: Stack, request_ids: set[str]) -> list[dict[str, Any]]:
    """The API's ``index.snapshot_loaded`` events of this phase's requests."""
    events, decoder = [], json.JSONDecoder()
    for line in stack.log("query-api").read_text(errors="replace").splitlines():
        at = 0  # the API's worker processes share the file: two lines can run into one
        while '"index.snapshot_loaded"' in line[at:]:
            event, at = decoder.raw_decode(line, at)
            if event.get("event") == "index.snapshot_loaded":
                events.append(event)
    return [e for e in events if e.get("request_id") in request_ids]


def p50_p95(values: list[float]) -> list[float]:
    if len(values) < 2:
        return [round(v, 1) for v in values * 2]
    return [round(statistics.median(values), 1), round(statistics.quantiles(values, n=20)[18], 1)]


@dataclass
class Phase:
    name: str
    tenants: int
    requests: int = 0
    errors: int = 0
    error_statuses: dict[int, int] = field(default_factory=dict)  # 0: no response
    per_s: float = 0.0
    all_ms: list[float] = field(default_factory=list)
    hot_ms: list[float] = field(default_factory=list)
    cold_ms: list[float] = field(default_factory=list)
    cold: int = 0
    cold_share: float = 0.0
    load_ms: list[float] = field(default_factory=list)  # the index's own load time, p50/p95
    loads: int = 0  # over the whole phase, warm-up included
    evictions: int = 0
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per request, warm-up included
    processes: list[dict[str, Any]] = field(default_factory=list)
    load_average: list[float] = field(default_factory=list)  # min, mean, max of the 1-min load


def run_phase(
    stack: Stack, name: str, keys: dict[str, str], asked: list[str], args: argparse.Namespace
) -> Phase:
    stack.restart("query-api")  # fresh processes: memory and caches from nothing
    stack.wait_ready(timeout=300)
    workers = api_workers(stack.processes["query-api"].pid)
    ranks = random.Random(args.seed).sample(range(len(keys)), len(keys))
    weights = [1 / (rank + 1) ** ZIPF_S for rank in ranks]
    sampler = Sampler(workers)
    pids = {"api": stack.processes["query-api"].pid}
    pids["endpoint"] = stack.processes["embedding-endpoint"].pid
    cpu = {k: process_cpu_s(pid) for k, pid in pids.items()}
    sampler.start()
    sent = asyncio.run(drive(stack.settings.api_url, keys, weights, asked, args, name))
    sampler.stop.set()
    sampler.join()
    cpu = {k: process_cpu_s(pid) - cpu[k] for k, pid in pids.items()}
    events = loads_logged(stack, {s.request_id for s in sent})
    cold_ids = {e["request_id"] for e in events}
    counted = [s for s in sent if s.started >= args.warmup_s]
    good = [s for s in counted if s.status == 200]
    phase = Phase(name, len(keys), requests=len(counted), errors=len(counted) - len(good))
    phase.error_statuses = dict(Counter(s.status for s in sent if s.status != 200))
    phase.per_s = round(len(counted) / args.duration_s, 1)
    phase.cpu_ms = {k: round(1000 * v / len(sent), 2) for k, v in cpu.items()}
    phase.all_ms = p50_p95([s.ms for s in good])
    phase.hot_ms = p50_p95([s.ms for s in good if s.request_id not in cold_ids])
    cold = [s.ms for s in good if s.request_id in cold_ids]
    phase.cold_ms, phase.cold = p50_p95(cold), len(cold)
    phase.cold_share = round(len(cold) / max(len(good), 1), 3)
    counted_ids = {s.request_id for s in counted}
    phase.load_ms = p50_p95([e["ms"] for e in events if e["request_id"] in counted_ids])
    phase.loads = len(events)
    phase.evictions = sum(e["evicted"] for e in events)
    last = {e["pid"]: e for e in events}  # each worker's latest figures
    for pid in workers:
        mem = memory_kb(pid)
        phase.processes.append(
            {
                "pid": pid,
                "alive": mem["VmRSS"] > 0,
                "rss_end_mb": round(mem["VmRSS"] / 1024),
                "rss_peak_mb": round(max(mem["VmHWM"], sampler.rss_max[pid]) / 1024),
                "snapshots_mb": last.get(pid, {}).get("resident_mb", 0.0),
                "tenants_resident": last.get(pid, {}).get("resident_tenants", 0),
                "loads": sum(1 for e in events if e["pid"] == pid),
            }
        )
    loads = sampler.loads or [0.0]
    phase.load_average = [min(loads), round(statistics.mean(loads), 1), max(loads)]
    return phase


# -- report ----------------------------------------------------------------------------------


def report(phases: list[Phase], budget_mb: int, setup: dict[str, Any]) -> str:
    def pair(values: list[float]) -> str:
        return f"{values[0]:.1f} / {values[1]:.1f}" if values else "-"

    lines = [
        f"{setup['tenants']:,} tenants, {setup['documents']:,} documents, "
        f"{setup['chunks']:,} chunks; {setup['clients']} clients, think time "
        f"{setup['think_ms']} ms; {setup['duration_s']} s measured after {setup['warmup_s']} s",
        "",
        "| phase | requests/s | errors | p50 / p95 ms | hot p50 / p95 ms | cold p50 / p95 ms "
        "| cold searches | snapshot load p50 / p95 ms | loads | evictions "
        "| CPU ms per request: API / endpoint | load average |",
        "| --- |" + " ---: |" * 11,
    ]
    for p in phases:
        lines.append(
            f"| {p.name} | {p.per_s} | {p.errors} | {pair(p.all_ms)} | {pair(p.hot_ms)} "
            f"| {pair(p.cold_ms)} | {p.cold:,} ({p.cold_share:.1%}) | {pair(p.load_ms)} "
            f"| {p.loads:,} | {p.evictions:,} | {p.cpu_ms['api']} / {p.cpu_ms['endpoint']} "
            f"| {p.load_average[1]} ({p.load_average[0]}-"
            f"{p.load_average[2]}) |"
        )
    lines += [
        "",
        f"| phase | API process | RSS peak | RSS end | snapshots (budget {budget_mb} MB) "
        "| tenants resident |",
        "| --- | --- |" + " ---: |" * 4,
    ]
    for p in phases:
        for i, proc in enumerate(p.processes):
            end = f"{proc['rss_end_mb']} MB" if proc["alive"] else "exited"
            lines.append(
                f"| {p.name} | worker {i + 1} | {proc['rss_peak_mb']} MB | {end} "
                f"| {proc['snapshots_mb']:.0f} MB | {proc['tenants_resident']:,} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--think-ms", type=float, default=1000.0, help="mean; 0: back to back")
    parser.add_argument("--warmup-s", type=float, default=60.0)
    parser.add_argument("--duration-s", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--jobs", type=int, default=2, help="processes writing tenants")
    parser.add_argument("--data-dir", type=Path, help="reuse (or keep) the stack's data here")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="datatorag-tenants-"))
    with running_stack(data_dir, PYTHONFAULTHANDLER="1") as stack:  # a crash shows its stack
        library, ingest_s = ingest_corpus(stack.settings)
        plans = tenant_plans(library, args.tenants, args.seed)
        written, build_s = build_tenants(stack.settings, library, plans, args.jobs)
        sizes = {t: len(p) for t, p in plans.items()}
        chunk_counts = {
            t: sum(len(library.chunks[library.docs[d].doc_id]) for d, _ in p)
            for t, p in plans.items()
        }
        print(
            f"corpus: {len(library.docs)} documents ingested in {ingest_s:.0f} s; "
            f"{len(plans):,} tenants written in {build_s:.0f} s "
            f"({written:,} chunks; -1: reused)",
            flush=True,
        )
        store = key_store(stack.settings)
        keys = {t: store.create(t, role="query") for t in plans}
        median = sorted(sizes, key=sizes.__getitem__)[len(sizes) // 2]
        asked = [str(q["question"]) for q in questions(CORPUS / "questions-dev.jsonl")]
        phases = [
            run_phase(stack, "one tenant", {median: keys[median]}, asked, args),
            run_phase(stack, "many tenants", keys, asked, args),
        ]
    setup = {
        "tenants": len(plans),
        "documents": sum(sizes.values()),
        "chunks": sum(chunk_counts.values()),
        "one_tenant": {"name": median, "documents": sizes[median], "chunks": chunk_counts[median]},
        "clients": args.clients,
        "think_ms": args.think_ms,
        "warmup_s": args.warmup_s,
        "duration_s": args.duration_s,
        "ingest_s": round(ingest_s, 1),
        "build_s": round(build_s, 1),
        "documents_per_tenant": dict(Counter(min(s // 10 * 10, 150) for s in sizes.values())),
    }
    budget_mb = stack.settings.snapshot_memory_mb
    print(report(phases, budget_mb, setup))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        results = {"setup": setup, "budget_mb": budget_mb, "phases": [asdict(p) for p in phases]}
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
