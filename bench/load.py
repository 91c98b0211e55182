"""HTTP load test of the running stack with wrk, and where a request's time goes.

    .venv/bin/python bench/load.py [--duration 12] [--levels 1,10,32,100] [--json out.json]
        [--sizes 1,10] [--component-sizes 1,10,100] [--env KEY=VALUE] [--no-profile]
        [--data-dir DIR] [--wait-quiet LOAD] [--from-json FILE]

Starts the whole stack (every service a process, fresh data directory unless ``--data-dir``),
ingests ``../shared/corpus/pdf/libreoffice`` (102 documents) into tenant ``load-1x`` through the
pipeline, and builds bigger tenants (``load-10x``...) by replicating the indexed chunks, vectors
included, under new document ids (see ``replicate``). Then, per endpoint (``/v1/search`` hybrid,
``/v1/query`` when it answers 200), corpus size and number of clients, wrk sends POSTs for a fixed
duration (``bench/load_wrk.lua``): the dev questions in rotation, each made unique so that no
cache keyed on the query text answers it. More runs repeat one question (what the caches save)
and give every client a think time (people, not a saturating loop). Each run records
throughput, p50/p95/p99 latency, errors and the CPU seconds that the API, the embedding endpoint,
wrk and the rest of the machine spent.

Where the time goes: each component of a hybrid search is timed in this process, one request at
a time (API-key check, query embedding over HTTP, keyword search, vector search, fusion,
response serialisation), at every size in ``--component-sizes``; and py-spy samples the API
process during an extra 32-client run (skipped when py-spy is not installed).

Prints Markdown tables and rewrites the generated part of ``docs/benchmarks-load.md`` (between
the ``load:begin``/``load:end`` markers; the prose around them is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import CORPUS, REPO, ingest, questions, running_stack
from datatorag import wiring
from datatorag.domain.models import DocumentRecord, DocumentStatus, IndexedChunk
from datatorag.ports import SearchIndex
from datatorag.settings import Settings
from datatorag_cli.stack import Stack

LUA = REPO / "bench" / "load_wrk.lua"
DOC = REPO / "docs" / "benchmarks-load.md"
BEGIN, END = "<!-- load:begin -->", "<!-- load:end -->"
PAD = "@@PAD@@"  # replaced by the wrk script with whitespace unique to each request
TOP_K = 10
DEPTH = 30  # candidates per retriever in hybrid search (datatorag.usecases.search.CANDIDATES)
SHARED_CORES = 0.25  # others' CPU above this marks a run as disturbed
PROFILE_RATE = 100  # samples/s: py-spy falls behind at 200 on a busy 2-core machine
TARGETS = {32: 150.0, 100: 500.0}  # p95 ms, from the issue


def whitespace(n: int) -> str:
    """``n`` as spaces and tabs (as the wrk script pads): unique text, the same question."""
    return " " + "".join(" \t"[int(bit)] for bit in bin(n)[2:])


def search_body(query: str) -> dict[str, Any]:
    return {"query": query, "top_k": TOP_K, "mode": "hybrid"}


def query_body(question: str) -> dict[str, Any]:
    return {"question": question, "top_k": TOP_K}


ENDPOINTS: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "search": ("/v1/search", search_body),
    "query": ("/v1/query", query_body),
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def tenant_of(size: int) -> str:
    return f"load-{size}x"


# -- the corpus ------------------------------------------------------------------------------


@dataclass
class Corpus:
    size: int
    tenant: str
    documents: int
    chunks: int
    seconds: float  # to ingest (1x) or to replicate
    how: str


def indexed_documents(index: SearchIndex, tenant: str) -> list[DocumentRecord]:
    docs: list[DocumentRecord] = []
    while True:
        page = index.list_documents(
            tenant, status=DocumentStatus.INDEXED, limit=500, offset=len(docs)
        )
        docs += page
        if len(page) < 500:
            return docs


def chunks_of(db: sqlite3.Connection, doc_id: str) -> list[dict[str, Any]]:
    """A document's chunks with their vectors, read from the local index's tables.

    The ``SearchIndex`` port has no call that returns stored vectors, so this reads the SQLite
    schema of ``datatorag.adapters.index.sqlite.schema`` (read-only connection).
    """
    rows = db.execute(
        "SELECT c.chunk_id, c.ordinal, c.pages, c.token_count, t.heading, t.text, v.vector "
        "FROM chunks c JOIN chunk_texts t ON t.id = c.id JOIN chunk_vectors v ON v.id = c.id "
        "WHERE c.doc_id = ? ORDER BY c.ordinal",
        (doc_id,),
    ).fetchall()
    return [
        {
            "chunk_id": r[0],
            "ordinal": r[1],
            "pages": json.loads(r[2]),
            "token_count": r[3],
            "heading": r[4],
            "text": r[5],
            "vector": np.frombuffer(r[6], np.float32).tolist(),
        }
        for r in rows
    ]


def replicate(settings: Settings, source: str, copies: int) -> Corpus:
    """Tenant ``load-<copies>x``: every indexed document of ``source`` ``copies`` times.

    Copy 0 keeps the document and chunk ids; copy i > 0 gets the document id ``<id>-copy-<i>``
    (its chunk ids follow) and a source URI ending in ``#copy-<i>``. Documents go in through
    the port (``upsert_document`` then ``replace_chunks``, as the embedder-client writes them),
    so the stored term counts, the generation counter and the API's in-memory index behave as
    after a real ingestion.
    """
    target = tenant_of(copies)
    index = wiring.search_index(settings)
    originals = indexed_documents(index, source)
    existing = indexed_documents(index, target)
    started = time.perf_counter()
    path = settings.data_dir / "index" / f"{source}.db"
    if len(existing) != len(originals) * copies:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            for doc in originals:
                _copy_document(index, doc, chunks_of(db, doc.doc_id), target, copies)
    docs = indexed_documents(index, target)
    index.close()
    return Corpus(
        size=copies,
        tenant=target,
        documents=len(docs),
        chunks=sum(d.chunk_count for d in docs),
        seconds=round(time.perf_counter() - started, 1),
        how=f"{copies} copies of each 1x document, chunks and vectors read from the 1x index file "
        "and written through upsert_document + replace_chunks under doc ids suffixed -copy-<i>",
    )


def _copy_document(
    index: SearchIndex, doc: DocumentRecord, chunks: list[dict[str, Any]], target: str, copies: int
) -> None:
    for i in range(copies):
        suffix = f"-copy-{i}" if i else ""
        doc_id = doc.doc_id + suffix
        index.upsert_document(
            doc.model_copy(
                update={
                    "tenant": target,
                    "doc_id": doc_id,
                    "source_uri": doc.source_uri + (f"#copy-{i}" if i else ""),
                    "status": DocumentStatus.FETCHED,
                    "chunk_count": 0,
                }
            )
        )
        copied = [
            IndexedChunk(
                **{
                    **c,
                    "doc_id": doc_id,
                    "chunk_id": copy_chunk_id(c["chunk_id"], doc.doc_id, doc_id),
                }
            )
            for c in chunks
        ]
        index.replace_chunks(
            target, doc_id, doc.version, copied, title=doc.title, page_count=doc.page_count
        )


def copy_chunk_id(chunk_id: str, doc_id: str, new_doc_id: str) -> str:
    """``<doc id>:<version>:<ordinal>`` (the processor's form) with the copy's document id."""
    if not chunk_id.startswith(doc_id + ":"):
        raise ValueError(f"chunk id {chunk_id!r} does not start with its doc id {doc_id!r}")
    return new_doc_id + chunk_id[len(doc_id) :]


def ingest_base(settings: Settings) -> Corpus:
    index = wiring.search_index(settings)
    known = indexed_documents(index, tenant_of(1))
    seconds = 0.0
    if not known:  # a reused --data-dir keeps its ingested tenant
        docs, seconds = ingest(settings, CORPUS / "pdf" / "libreoffice", tenant_of(1))
        failed = [d.source_uri for d in docs if d.status != DocumentStatus.INDEXED]
        if failed:
            raise SystemExit(f"ingestion failed for {failed}")
        known = indexed_documents(index, tenant_of(1))
    index.close()
    return Corpus(
        size=1,
        tenant=tenant_of(1),
        documents=len(known),
        chunks=sum(d.chunk_count for d in known),
        seconds=round(seconds, 1),
        how="ingested through the pipeline (connector, processor, embedder-client)",
    )


# -- CPU accounting --------------------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants (the API's workers)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue
        child = int(stat.parent.name)
        parents[child], ticks[child] = int(fields[1]), int(fields[11]) + int(fields[12])
    tree, grew = {pid}, True
    while grew:
        found = {p for p, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sum(ticks.get(p, 0) for p in tree) / CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (everything but idle and iowait).

    Only the first 8 fields: guest time is already counted in user time.
    """
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLK_TCK


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuUse:
    seconds: dict[str, float] = field(default_factory=dict)  # per process, plus wrk and others


@contextmanager
def cpu_meter(pids: dict[str, int]) -> Iterator[CpuUse]:
    """CPU seconds per tracked process over the block; ``wrk``: reaped children (the load
    generator); ``others``: the rest of the machine (other users' jobs included)."""
    use = CpuUse()
    before = {name: process_cpu_s(pid) for name, pid in pids.items()}
    busy, children = machine_busy_s(), children_cpu_s()
    yield use
    use.seconds = {name: process_cpu_s(pid) - before[name] for name, pid in pids.items()}
    use.seconds["wrk"] = children_cpu_s() - children
    use.seconds["others"] = max(0.0, machine_busy_s() - busy - sum(use.seconds.values()))


# -- wrk ---------------------------------------------------------------------------------------


@dataclass
class Run:
    endpoint: str
    size: int
    mode: str  # unique | repeated
    clients: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    cpu_ms_per_request: dict[str, float]  # per process
    load_before: float  # 1-minute load average when the run started
    think_ms: int = 0  # pause of each client between a response and its next request
    texts_per_batch: float | None = None  # mean texts per model call in the endpoint


def bodies_file(endpoint: str, mode: str, texts: Sequence[str], folder: Path) -> Path:
    """One JSON body per line; ``unique`` bodies carry the marker the wrk script replaces."""
    build = ENDPOINTS[endpoint][1]
    lines = [
        json.dumps(build(q + PAD)) if mode == "unique" else json.dumps(build(q)) for q in texts
    ]
    path = folder / f"{endpoint}-{mode}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_wrk(
    url: str, bodies: Path, mode: str, clients: int, duration: float, key: str, salt: int,
    think_ms: int = 0,
) -> dict[str, Any]:  # fmt: skip
    threads = min(2, clients)
    command = [
        "wrk", f"-t{threads}", f"-c{clients}", f"-d{int(duration)}s", "--timeout", "30s",
        "-s", str(LUA), url, "--", str(bodies), mode, str(salt), str(think_ms),
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "DATATORAG_LOAD_KEY": key}
    )
    found = re.search(r"^WRK_JSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result: dict[str, Any] = json.loads(found.group(1))
    return result


@dataclass
class Target:
    api: str
    embedding_url: str
    keys: dict[int, str]  # size -> API key of its tenant
    pids: dict[str, int]  # processes whose CPU is counted
    folder: Path
    salt: int = 0

    def run(
        self, endpoint: str, size: int, mode: str, clients: int, duration: float, think_ms: int = 0
    ) -> Run:
        bodies = self.folder / f"{endpoint}-{mode}.jsonl"
        self.salt += 1
        load = os.getloadavg()[0]
        batches = self.batch_stats()
        with cpu_meter(self.pids) as cpu:
            out = run_wrk(
                self.api + ENDPOINTS[endpoint][0],
                bodies,
                mode,
                clients,
                duration,
                self.keys[size],
                self.salt,
                think_ms,
            )
        after = self.batch_stats()
        texts, calls = after[0] - batches[0], after[1] - batches[1]
        n, lat = out["requests"], out["latency_us"]
        seconds = out["duration_us"] / 1e6
        return Run(
            endpoint=endpoint,
            size=size,
            mode=mode,
            clients=clients,
            seconds=round(seconds, 1),
            requests=n,
            rps=round(n / seconds, 1),
            p50_ms=lat["p50"] / 1000,
            p95_ms=lat["p95"] / 1000,
            p99_ms=lat["p99"] / 1000,
            max_ms=lat["max"] / 1000,
            errors=sum(out["errors"].values()),
            cpu_ms_per_request={k: round(1000 * v / max(n, 1), 2) for k, v in cpu.seconds.items()},
            load_before=round(load, 2),
            think_ms=think_ms,
            texts_per_batch=round(texts / calls, 1) if calls else None,
        )

    def batch_stats(self) -> tuple[int, int]:
        """Texts embedded and model calls made so far by the embedding endpoint."""
        stats = httpx.get(self.embedding_url + "/stats", timeout=10).json()
        return int(stats["texts"]), int(stats["batches"])


def probe(api: str, endpoint: str, key: str, question: str) -> int:
    """The status of one request (a missing endpoint is reported, not benchmarked)."""
    path, build = ENDPOINTS[endpoint]
    response = httpx.post(api + path, json=build(question), headers={"X-API-Key": key}, timeout=60)
    return response.status_code


# -- components, in this process ---------------------------------------------------------------


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[tuple[float, float], Any]:
    """(wall ms, CPU ms of this thread) per call, and the last result.

    Thread CPU time stays honest on a busy machine, where wall time also counts the waits for a
    core; it misses work done in other processes or threads (the embedding endpoint).
    """
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(repeat):
        result = fn()
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    return (1000 * wall / repeat, 1000 * cpu / repeat), result


def summary(values: list[tuple[float, float]]) -> dict[str, float]:
    walls = sorted(w for w, _ in values)
    p95 = walls[min(len(walls) - 1, round(0.95 * (len(walls) - 1)))]
    return {
        "p50": round(statistics.median(walls), 3),
        "p95": round(p95, 3),
        "cpu_p50": round(statistics.median(c for _, c in values), 3),
    }


def components(
    settings: Settings, api: str, key: str, tenant: str, texts: list[str]
) -> dict[str, dict[str, float]]:
    """Each piece of one hybrid search, timed alone, one question at a time (ms)."""
    from datatorag_query_api.bootstrap import key_store

    index, embeddings = wiring.search_index(settings), wiring.embeddings(settings)
    keys = key_store(settings)
    index.vector_search(tenant, embeddings.embed(["warm up"])[0].tolist(), 1)  # loads the matrix
    times: dict[str, list[tuple[float, float]]] = {}
    with httpx.Client(timeout=60, headers={"X-API-Key": key}) as client:
        for text in texts:
            unique = text + whitespace(time.monotonic_ns())  # a miss in every cache
            for name, ms in one_search(index, embeddings, keys, key, tenant, text, unique):
                times.setdefault(name, []).append(ms)
            ms, answer = timed(partial(client.post, api + "/v1/search", json=search_body(unique)))
            wall = (ms[0], float("nan"))  # the CPU is this client's, not the server's
            times.setdefault("whole request over HTTP, client-side", []).append(wall)
            took = float(answer.json()["took_ms"])
            times.setdefault("  of which the server's took_ms", []).append((took, float("nan")))
    index.close()
    return {name: summary(values) for name, values in times.items()}


def one_search(
    index: SearchIndex, embeddings: Any, keys: Any, key: str, tenant: str, text: str, unique: str
) -> Iterator[tuple[str, tuple[float, float]]]:
    """(component, (wall ms, CPU ms)) for the steps of one hybrid search, as the API runs them."""
    from fastapi.encoders import jsonable_encoder

    from datatorag.usecases.search import reciprocal_rank_fusion
    from datatorag_query_api.app import SearchResponse

    yield "API key check", timed(partial(keys.authenticate, key))[0]
    ms, vectors = timed(partial(embeddings.embed, [unique]))
    yield "query embedding over HTTP (CPU: the API side of the call)", ms
    vector = vectors[0].tolist()
    ms, keyword = timed(partial(index.keyword_search, tenant, text, DEPTH))
    yield f"keyword search (in-memory BM25, top {DEPTH})", ms
    ms, semantic = timed(partial(index.vector_search, tenant, vector, DEPTH))
    yield f"vector search (numpy exact, top {DEPTH}, rows read)", ms
    ms, hits = timed(partial(reciprocal_rank_fusion, [keyword, semantic], TOP_K))
    yield "reciprocal rank fusion", ms
    body = SearchResponse(hits=hits, took_ms=1.0)
    yield "response serialisation", timed(partial(serialise, body, jsonable_encoder), 5)[0]


def serialise(body: Any, encoder: Callable[[Any], Any]) -> bytes:
    """What FastAPI does with a returned model: validate, to JSON-able, dump."""
    return json.dumps(encoder(type(body).model_validate(body.model_dump()))).encode()


# -- profile -----------------------------------------------------------------------------------

# First match wins; patterns are searched in the semicolon-joined stack of one sample.
CATEGORIES = [
    ("API key check", r"authenticate \("),
    ("query embedding (HTTP client)", r"embeddings\.py|httpx|httpcore"),
    ("keyword search (BM25)", r"keyword_search \("),
    ("vector scoring (numpy)", r"_top_k \("),
    ("vector search: snapshot, hit rows", r"vector_search \(|_fetch_hits \(|_read_snapshot \("),
    ("fusion", r"reciprocal_rank_fusion \("),
    ("response serialisation", r"serialize_response|jsonable_encoder|render \(|dump_python"),
    ("request parsing and validation", r"request_body_to_args|_validate|body \(|json \("),
    ("logging (structlog)", r"structlog|logging/"),
    ("HTTP protocol (uvicorn, h11)", r"h11|httptools|uvicorn/protocols"),
    ("framework (starlette, fastapi, anyio)", r"starlette|fastapi|anyio"),
    ("event loop (asyncio)", r"asyncio"),
]


def profile_api(pid: int, seconds: float, out: Path) -> dict[str, float] | None:
    """Start py-spy on the API; returns a function's share of the on-CPU samples when done."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return None
    command = [
        spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
        "--rate", str(PROFILE_RATE), "--format", "raw", "--output", str(out), "--nonblocking",
        "--subprocesses",
    ]  # fmt: skip
    subprocess.run(command, capture_output=True, check=True)
    return categorise(out.read_text())


def categorise(raw: str) -> dict[str, float]:
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        name = next((c for c, p in CATEGORIES if re.search(p, stack)), "other")
        counts[name] += int(n)
    total = sum(counts.values()) or 1
    return {name: round(100 * n / total, 1) for name, n in counts.most_common()}


@contextmanager
def background(fn: Callable[[], Any]) -> Iterator[dict[str, Any]]:
    import threading

    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(result=fn()), daemon=True)
    thread.start()
    yield box
    thread.join()


# -- report ------------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    cpu = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    mem = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.MULTILINE)
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu.group(1).strip() if cpu else platform.processor(),
        "memory_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "python": platform.python_version(),
        "wrk": wrk[0].split(" Copyright")[0] if wrk else "?",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def fmt(ms: float) -> str:
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}"


def run_table(runs: list[Run]) -> str:
    lines = [
        "| clients | requests/s | p50 ms | p95 ms | p99 ms | errors | API CPU ms/req "
        "| endpoint CPU ms/req | texts per model call | others' CPU (cores) | load avg before |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        cpu = r.cpu_ms_per_request
        others = cpu["others"] * r.requests / 1000 / max(r.seconds, 1e-9)
        target = TARGETS.get(r.clients)
        mark = "" if target is None else (" (ok)" if r.p95_ms < target else " (over target)")
        shared = " (shared)" if others > SHARED_CORES else ""
        lines.append(
            f"| {r.clients} | {r.rps:.1f} | {fmt(r.p50_ms)} | {fmt(r.p95_ms)}{mark} "
            f"| {fmt(r.p99_ms)} | {r.errors} | {cpu['query-api']:.1f} "
            f"| {cpu['embedding-endpoint']:.1f} | {r.texts_per_batch or '-'} "
            f"| {others:.2f}{shared} "
            f"| {r.load_before:.2f} |"
        )
    return "\n".join(lines)


def heading(r: Run) -> str:
    path = ENDPOINTS[r.endpoint][0]
    if r.mode == "repeated":
        what = "the same question every time (the query-vector cache answers)"
    else:
        what = "every request a different text (no cache can answer)"
    if r.think_ms:
        what += f", each client pausing {r.think_ms} ms (+-50 %) between requests"
    return f"#### `{path}`, {r.size}x corpus, {what}"


def report(result: dict[str, Any]) -> str:
    facts = result["machine"]
    env = result.get("env") or {}
    out = [
        f"Command: `{result['command']}` (took {result['seconds']:.0f} s)"
        + (
            f"; services ran with {', '.join(f'`{k}={v}`' for k, v in env.items())}."
            if env
            else "."
        ),
        "",
        f"Machine: {facts['nproc']} cores ({facts['cpu']}), {facts['memory_gib']} GiB, Python "
        f"{facts['python']}, {facts['wrk']}. Load average (1, 5, 15 min) at the start: "
        f"{', '.join(map(str, facts['load_average_at_start']))}; at the end: "
        f"{', '.join(map(str, result['load_average_at_end']))}. Every service runs on these "
        "same cores: wrk, the API, the embedding endpoint and the idle workers.",
        "",
        "| corpus | tenant | documents | chunks | built in | how |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for c in result["corpora"]:
        out.append(
            f"| {c['size']}x | {c['tenant']} | {c['documents']} | {c['chunks']} "
            f"| {c['seconds']} s | {c['how']} |"
        )
    for note in result["notes"]:
        out += ["", note]
    groups: dict[str, list[Run]] = {}
    for r in (Run(**r) for r in result["runs"]):
        groups.setdefault(heading(r), []).append(r)
    for title, group in groups.items():
        out += ["", title, "", run_table(group)]
    out += [
        "",
        "API and endpoint CPU are per request, summed over all threads of the process. Others' "
        "CPU is the rest of the machine in cores (idle workers polling their queues, other "
        f"people's jobs); rows where it exceeds {SHARED_CORES} ran with that much of the 2 cores "
        "taken, and their latencies are inflated. The load average counts the benchmark's own "
        "threads (wrk, the API's thread pool), so it overstates how busy the machine was.",
    ]
    out += component_section(result)
    return "\n".join(out)


def component_section(result: dict[str, Any]) -> list[str]:
    out: list[str] = []
    comps = result.get("components") or {}
    if comps:
        sizes = list(comps)
        out += [
            "",
            "#### Components of one hybrid search, one request at a time",
            "",
            "Milliseconds, wall p50 / wall p95 / CPU p50 (CPU of the calling thread: it does not"
            " count the wait for a core on a busy machine).",
            "",
            "| component | " + " | ".join(f"{s}x" for s in sizes) + " |",
            "| --- | " + " | ".join("---:" for _ in sizes) + " |",
        ]
        for name in comps[sizes[0]]:
            cells = [comps[s][name] for s in sizes]
            row = " | ".join(
                f"{c['p50']:.2f} / {c['p95']:.2f} / {c['cpu_p50']:.2f}".replace(" / nan", "")
                for c in cells
            )
            out.append(f"| {name} | {row} |")
    profile = result.get("profile")
    if profile:
        out += [
            "",
            f"#### py-spy on the API process, {profile['what']}",
            "",
            f"{profile['samples_note']}",
            "",
            "| where | share of on-CPU samples |",
            "| --- | ---: |",
        ]
        out += [f"| {name} | {share} % |" for name, share in profile["shares"].items()]
    return out


def write_doc(markdown: str) -> None:
    generated = f"{BEGIN}\n{markdown}\n{END}"
    text = DOC.read_text() if DOC.exists() else f"# Load benchmark\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + generated + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + generated + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


# -- main --------------------------------------------------------------------------------------


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--duration", type=int, default=12, help="seconds per run (default 12)")
    add("--levels", type=ints, default=[1, 10, 32, 100], help="clients per run")
    add("--sizes", type=ints, default=[1, 10], help="corpus multiples to load")
    add("--endpoints", default="search,query", help="of: search, query")
    add("--repeated-levels", type=ints, default=[32, 100], help="clients, repeated-query runs")
    add("--think-levels", type=ints, default=[32, 100], help="clients, runs with think time")
    add("--think-ms", type=int, default=1000, help="think time of those runs")
    add("--component-sizes", type=ints, default=[1, 10, 100], help="sizes to time pieces at")
    add("--no-profile", action="store_true", help="skip the py-spy run")
    add("--env", action="append", default=[], help="KEY=VALUE for every service (repeatable)")
    add("--wait-quiet", type=float, default=0, help="first wait (10 min at most) for the "
        "1-minute load average to fall below this")  # fmt: skip
    add("--json", type=Path, help="write the results here too")
    add("--data-dir", type=Path, help="reuse a data dir (keeps its tenants)")
    add("--no-doc", action="store_true", help="do not rewrite docs/benchmarks-load.md")
    add("--from-json", type=Path, help="only render the results of an earlier --json run")
    return parser.parse_args()


def wait_quiet(threshold: float, limit_s: float = 600) -> None:
    deadline = time.monotonic() + limit_s
    while threshold and os.getloadavg()[0] >= threshold and time.monotonic() < deadline:
        print(f"waiting for load < {threshold}: {os.getloadavg()[0]:.2f}", file=sys.stderr)
        time.sleep(15)


def main() -> None:
    args = parse_args()
    if args.from_json:
        publish(json.loads(args.from_json.read_text()), None, args.no_doc)
        return
    wait_quiet(args.wait_quiet)
    started = time.perf_counter()
    texts = [str(q["question"]) for q in questions(CORPUS / "questions-dev.jsonl")]
    env = dict(item.split("=", 1) for item in args.env)
    result: dict[str, Any] = {
        "command": "python bench/load.py " + " ".join(sys.argv[1:]),
        "machine": machine_facts(),
        "env": env,
        "notes": [],
    }
    folder = Path(tempfile.mkdtemp(prefix="datatorag-load-"))
    data_dir = args.data_dir or folder / "data"  # a fresh one is removed at the end (~0.5 GB)
    try:
        measure(data_dir, env, texts, folder, args, result)
    except BaseException:
        print(f"kept {folder} (service logs under data/logs)", file=sys.stderr)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = round(time.perf_counter() - started, 1)
    publish(result, args.json, args.no_doc)


def measure(
    data_dir: Path,
    env: dict[str, str],
    texts: list[str],
    folder: Path,
    args: argparse.Namespace,
    result: dict[str, Any],
) -> None:
    """Everything that needs the running stack; fills ``result``."""
    with running_stack(data_dir, **env) as stack:
        settings = stack.settings
        target = prepare(stack, args, result)
        target.folder = folder
        endpoints = [
            e
            for e in available_endpoints(settings.api_url, target.keys, texts, result["notes"])
            if e in args.endpoints.split(",")
        ]
        for endpoint in endpoints:
            for mode in ("unique", "repeated"):
                bodies_file(endpoint, mode, texts, folder)
        result["runs"] = [asdict(r) for r in load_runs(target, endpoints, args)]
        result["components"] = {
            size: components(settings, settings.api_url, target.keys[size], tenant_of(size), texts)
            for size in args.component_sizes
        }
        if not args.no_profile:
            result["profile"] = profiled_run(target, max(args.sizes), args.duration, folder)


def publish(result: dict[str, Any], json_path: Path | None, no_doc: bool) -> None:
    markdown = report(result)
    print(markdown)
    if json_path:
        json_path.write_text(json.dumps(result, indent=2))
    if not no_doc:
        write_doc(markdown)


def prepare(stack: Stack, args: argparse.Namespace, result: dict[str, Any]) -> Target:
    """The tenants of every size, an API key for each, and what the runs need to know."""
    from datatorag_query_api.bootstrap import key_store

    settings = stack.settings
    corpora = [ingest_base(settings)]
    sizes = sorted(set(args.sizes) | set(args.component_sizes) | {1})
    corpora += [replicate(settings, tenant_of(1), s) for s in sizes if s > 1]
    result["corpora"] = [asdict(c) for c in corpora]
    store = key_store(settings)
    keys = {c.size: store.create(c.tenant) for c in corpora}
    pids = {name: stack.processes[name].pid for name in ("query-api", "embedding-endpoint")}
    return Target(settings.api_url, settings.embedding_url, keys, pids, Path())


def available_endpoints(
    api: str, keys: dict[int, str], texts: list[str], notes: list[str]
) -> list[str]:
    found = []
    for endpoint in ENDPOINTS:
        # One request per tenant: it also loads each tenant's matrix into the API's memory.
        statuses = {
            probe(api, endpoint, key, texts[size % len(texts)]) for size, key in keys.items()
        }
        if statuses == {200}:
            found.append(endpoint)
        else:
            notes.append(
                f"`{ENDPOINTS[endpoint][0]}` answered {sorted(statuses)}: not benchmarked."
            )
    return found


def load_runs(target: Target, endpoints: list[str], args: argparse.Namespace) -> list[Run]:
    plan = [
        (e, size, "unique", c, 0) for e in endpoints for size in args.sizes for c in args.levels
    ]
    plan += [
        ("search", size, "repeated", c, 0) for size in args.sizes for c in args.repeated_levels
    ]
    plan += [
        ("search", size, "unique", c, args.think_ms)
        for size in args.sizes
        for c in args.think_levels
    ]
    runs = []
    for endpoint, size, mode, clients, think in plan:
        if endpoint in endpoints:
            runs.append(target.run(endpoint, size, mode, clients, args.duration, think))
            print(summary_line(runs[-1]), file=sys.stderr, flush=True)
    return runs


def summary_line(r: Run) -> str:
    return (
        f"{r.endpoint} {r.size}x {r.mode} c={r.clients}: {r.rps} req/s, p50 {fmt(r.p50_ms)} "
        f"p95 {fmt(r.p95_ms)} p99 {fmt(r.p99_ms)} ms, {r.errors} errors, cpu/req "
        f"{r.cpu_ms_per_request}, load {r.load_before}"
    )


def profiled_run(target: Target, size: int, duration: float, folder: Path) -> dict[str, Any]:
    """A 32-client /v1/search run with py-spy sampling the API (not part of the tables)."""
    out = folder / "py-spy.txt"
    seconds = max(2.0, duration - 2)
    with background(lambda: profile_api(target.pids["query-api"], seconds, out)) as box:
        time.sleep(0.5)
        run = target.run("search", size, "unique", 32, duration)
    shares = box.get("result")
    if shares is None:
        return {}
    samples = sum(int(line.rpartition(" ")[2]) for line in out.read_text().splitlines() if line)
    rate = PROFILE_RATE
    return {
        "what": f"`/v1/search`, {size}x corpus, 32 clients, every request unique "
        f"({run.rps} req/s, p95 {fmt(run.p95_ms)} ms while sampled)",
        "samples_note": f"py-spy record --rate {rate} --nonblocking for {seconds:.0f} s: {samples} "
        "samples of threads on CPU (threads waiting on a socket or for the GIL are idle and "
        "not counted). A sample counts for the first row whose pattern its stack matches, top "
        "of the table first.",
        "shares": shares,
    }


if __name__ == "__main__":
    main()
