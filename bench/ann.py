"""Approximate vector search (hnswlib) against exact search, at 1x, 10x and 100x one tenant.

    python bench/ann.py [--data-dir DIR] [--sizes 10 100] [--repeats 5] [--json out.json]

Ingests the corpus's LibreOffice PDFs through the running stack into tenant ``eval`` (a reused
``--data-dir`` keeps it) and embeds the dev questions with the same endpoint; then stops the
stack. The 10x and 100x tenants hold each 1x document ``n`` times through the port
(``upsert_document`` + ``replace_chunks``): copy 0 as it is, copy i > 0 under the document id
``<id>-copy-<i>`` with every chunk vector moved by a small random perturbation (cosine ~0.95 to
the original, renormalised) and the same text. That is all real text and real embeddings, but
near-duplicates, which are the hardest input for HNSW; distinct texts would need 118k passages
embedded (~2 hours on this CPU).

For each size, in this process and on the real index code (``SqliteSearchIndex``): latency of
``vector_search`` (top 10, through the port: snapshot, graph or matrix, SQLite row fetch) p50 /
p95 exact and approximate; the graph's build time (1 thread, as in the background) and memory
(RSS growth, and the estimate the snapshot budget counts), and reading it back from its file;
recall@10 of the graph's answers
against exact search, over the dev questions and 200 queries near random chunks, for several
``ef``; and retrieval on the dev set (hit@5, evidence@5, vector and hybrid) with the graph
forced on and off. ``--direct`` adds hnswlib alone on the largest tenant's vectors, and on as
many copies moved along the corpus's own spread instead, by M, ef_construction and ef.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import CORPUS, ingest, manifest_id, questions, running_stack
from bench.load import chunks_of, copy_chunk_id, indexed_documents
from bench.retrieval_eval import TOP, corpus_loose, score
from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.adapters.index.sqlite.ann import AnnConfig, build, load, save
from datatorag.domain.models import DocumentFacts, DocumentStatus, IndexedChunk
from datatorag.settings import Settings

BASE = "eval"
EFS = (32, 64, 128, 256, 512)
NOISE = 0.3  # perturbation of a copy's vectors: cosine ~0.95 to the original


def prepare(data_dir: Path | None) -> tuple[Settings, np.ndarray]:
    """The ingested 1x tenant and the dev questions' vectors (cached in the data directory)."""
    with running_stack(data_dir) as stack:
        from datatorag import wiring

        settings = stack.settings
        index = wiring.search_index(settings)
        if not indexed_documents(index, BASE):
            docs, seconds = ingest(settings, CORPUS / "pdf" / "libreoffice", BASE)
            print(f"ingested {len(docs)} documents in {seconds:.0f} s", file=sys.stderr)
        cached = settings.data_dir / "dev-questions.npy"
        if not cached.exists():
            texts = [str(q["question"]) for q in questions(CORPUS / "questions-dev.jsonl")]
            np.save(cached, wiring.embeddings(settings).embed(texts))
        index.close()
        return settings, np.load(cached)


def replicate(root: Path, copies: int) -> str:
    """Tenant ``ann-<copies>x``: every 1x document ``copies`` times, copies perturbed."""
    import sqlite3

    target = f"ann-{copies}x"
    index = SqliteSearchIndex(root, ann=AnnConfig(min_chunks=0))
    originals = indexed_documents(index, BASE)
    if len(indexed_documents(index, target)) == len(originals) * copies:
        return target
    rng = np.random.default_rng(copies)
    with closing(sqlite3.connect(f"file:{root / BASE}.db?mode=ro", uri=True)) as db:
        for doc in originals:
            chunks = chunks_of(db, doc.doc_id)
            for i in range(copies):
                doc_id = doc.doc_id + (f"-copy-{i}" if i else "")
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
                copied = []
                for c in chunks:
                    vector = np.asarray(c["vector"], np.float32)
                    if i:
                        vector = vector + rng.normal(size=vector.shape) * NOISE / np.sqrt(
                            vector.shape[0]
                        )
                        vector /= np.linalg.norm(vector)
                    copied.append(
                        IndexedChunk(
                            **{
                                **c,
                                "doc_id": doc_id,
                                "chunk_id": copy_chunk_id(c["chunk_id"], doc.doc_id, doc_id),
                                "vector": vector.tolist(),
                            }
                        )
                    )
                facts = DocumentFacts(title=doc.title, page_count=doc.page_count)
                index.replace_chunks(target, doc_id, doc.version, copied, facts=facts)
    index.close()
    return target


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentiles(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
    }


def latencies(
    index: SqliteSearchIndex,
    tenant: str,
    queries: np.ndarray,
    repeats: int,
    where: dict[str, Any] | None = None,
) -> dict:
    """Wall and CPU ms of one ``vector_search`` (the CPU figure hardly depends on neighbours)."""
    index.vector_search(tenant, queries[0].tolist(), TOP, where)  # load the snapshot
    wall, cpu = [], []
    for _ in range(repeats):
        for q in queries:
            vector = q.tolist()
            began, began_cpu = time.perf_counter(), time.thread_time()
            index.vector_search(tenant, vector, TOP, where)
            cpu.append((time.thread_time() - began_cpu) * 1000)
            wall.append((time.perf_counter() - began) * 1000)
    cpu_p = percentiles(cpu)
    return {**percentiles(wall), "cpu_p50": cpu_p["p50"], "cpu_p95": cpu_p["p95"]}


def near_chunks(matrix: np.ndarray, count: int) -> np.ndarray:
    """Queries near random chunks (the dev questions are few)."""
    rng = np.random.default_rng(0)
    picked = matrix[rng.choice(matrix.shape[0], count, replace=False)]
    moved = picked + rng.normal(size=picked.shape) * 0.5 / np.sqrt(picked.shape[1])
    return (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32)


def recall(
    exact: SqliteSearchIndex,
    ann: SqliteSearchIndex,
    tenant: str,
    queries: np.ndarray,
    where: dict[str, Any] | None = None,
) -> float:
    found = 0
    for q in queries:
        truth = {h.chunk_id for h in exact.vector_search(tenant, q.tolist(), TOP, where)}
        got = ann.vector_search(tenant, q.tolist(), TOP, where)
        found += len(truth & {h.chunk_id for h in got})
    return round(found / (TOP * len(queries)), 4)


class CachedQuestions:
    """The dev questions' real vectors, embedded once by the endpoint (not a fake: a cache)."""

    def __init__(self, texts: list[str], vectors: np.ndarray) -> None:
        self.rows = dict(zip(texts, vectors, strict=True))
        self.dimension = vectors.shape[1]

    def embed(self, texts: Any) -> np.ndarray:
        return np.stack([self.rows[t] for t in texts])


def dev_retrieval(index: SqliteSearchIndex, tenant: str, embeddings: CachedQuestions) -> dict:
    from datatorag.usecases.search import Searcher

    qs = questions(CORPUS / "questions-dev.jsonl")
    loose = corpus_loose(CORPUS)
    searcher = Searcher(index, embeddings)  # type: ignore[arg-type]
    out = {}
    for mode in ("vector", "hybrid"):
        scored = score(
            qs,
            lambda q, mode=mode: [
                (manifest_id(h.source_uri), h.text)
                for h in searcher.search(tenant, q, TOP, mode)  # type: ignore[arg-type]
            ],
            loose,
        )
        out[mode] = {"hit@5": scored["hit@5"], "evidence@5": scored["evidence@5"]}
    return out


def measure(root: Path, tenant: str, dev: np.ndarray, repeats: int) -> dict[str, Any]:
    exact = SqliteSearchIndex(root, ann=AnnConfig(min_chunks=0))
    result: dict[str, Any] = {"tenant": tenant}
    before = rss_bytes()
    result["exact"] = latencies(exact, tenant, dev, repeats)
    snapshot = exact._snapshots.peek(tenant)
    assert snapshot is not None
    result["chunks"] = snapshot.size - snapshot.dead
    result["snapshot_mb"] = round(snapshot.nbytes / 2**20, 1)
    result["snapshot_rss_mb"] = round((rss_bytes() - before) / 2**20, 1)
    config = AnnConfig(min_chunks=1, background=False)
    began, before = time.perf_counter(), rss_bytes()
    graph = build(snapshot, config)
    result["build_s"] = round(time.perf_counter() - began, 2)
    result["graph_rss_mb"] = round((rss_bytes() - before) / 2**20, 1)
    result["graph_estimate_mb"] = round(graph.nbytes / 2**20, 1)
    path = root / f"{tenant}.{snapshot.epoch}.hnsw"  # where the index keeps it
    began = time.perf_counter()
    save(graph, path)
    result["save_s"] = round(time.perf_counter() - began, 2)
    result["file_mb"] = round(path.stat().st_size / 2**20, 1)
    del graph
    began = time.perf_counter()
    load(path, snapshot.matrix.shape[1], config)  # what a process loading the tenant does
    result["load_s"] = round(time.perf_counter() - began, 2)
    ann = SqliteSearchIndex(root, ann=config)
    ann.vector_search(tenant, dev[0].tolist(), TOP)  # loads the snapshot, builds its graph
    queries = np.concatenate([dev, near_chunks(snapshot.matrix, 200)])
    ann_snapshot = ann._snapshots.peek(tenant)
    assert ann_snapshot is not None and ann_snapshot.graphs.graph is not None
    sweep = {}
    texts = [str(q["question"]) for q in questions(CORPUS / "questions-dev.jsonl")]
    embeddings = CachedQuestions(texts, dev)
    for ef in EFS:
        ann_snapshot.graphs.graph.index.set_ef(ef)
        sweep[ef] = {"recall@10": recall(exact, ann, tenant, queries)}
        sweep[ef].update(latencies(ann, tenant, dev, repeats))
        sweep[ef]["dev"] = dev_retrieval(ann, tenant, embeddings)
    ann_snapshot.graphs.graph.index.set_ef(config.ef_search)
    # A filter passing every 4th document (by id): oversampled from the graph, then filtered.
    quarter = sorted(ann_snapshot.codes)[::4]
    where = {"doc_id": quarter}
    answered = ann.approximate.answered
    result["filtered"] = {
        "exact": latencies(exact, tenant, dev, repeats, where),
        "ann": latencies(ann, tenant, dev, repeats, where),
        "recall@10": recall(exact, ann, tenant, queries, where),
        "answered_by_graph": ann.approximate.answered - answered,
    }
    result["ann_by_ef"] = sweep
    result["answered"] = (ann.approximate.answered, ann.approximate.asked)
    result["dev_exact"] = dev_retrieval(exact, tenant, embeddings)
    result["dev_ann"] = sweep[config.ef_search]["dev"]
    exact.close()
    ann.close()
    return result


def direct(root: Path, dev: np.ndarray, tenant: str) -> list[dict[str, Any]]:
    """hnswlib alone on ``tenant``'s vectors (its near-copies) and on the same number of copies
    moved along the corpus's own spread (``v + 0.35 (x_j - x_k)``, random chunks j, k): recall@10
    of the dev questions against numpy's exact top 10, by M / ef_construction and ef."""
    import sqlite3

    import hnswlib

    def vectors(name: str) -> np.ndarray:
        with closing(sqlite3.connect(f"file:{root / name}.db?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT vector FROM chunk_vectors ORDER BY id").fetchall()
        return np.frombuffer(b"".join(r[0] for r in rows), np.float32).reshape(len(rows), -1)

    copies, base = vectors(tenant), vectors(BASE)
    rng = np.random.default_rng(1)
    spread = [base]
    while sum(len(p) for p in spread) < len(copies):
        j, k = rng.integers(len(base), size=len(base)), rng.integers(len(base), size=len(base))
        moved = base + 0.35 * (base[j] - base[k])
        spread.append(moved / np.linalg.norm(moved, axis=1, keepdims=True))
    runs = []
    for data, m, efc in (
        ("near-copies", 16, 100),
        ("near-copies", 32, 200),
        ("corpus spread", 16, 100),
    ):
        matrix = copies if data == "near-copies" else np.concatenate(spread)[: len(copies)]
        matrix = np.ascontiguousarray(matrix, np.float32)
        truth = np.argsort(-(dev @ matrix.T), axis=1)[:, :TOP]
        began = time.perf_counter()
        graph = hnswlib.Index(space="ip", dim=matrix.shape[1])
        graph.init_index(max_elements=len(matrix), M=m, ef_construction=efc, random_seed=100)
        graph.add_items(matrix, np.arange(len(matrix)), num_threads=2)
        run: dict[str, Any] = {"data": data, "M": m, "ef_construction": efc}
        run["build_s_2_threads"] = round(time.perf_counter() - began, 1)
        for ef in (64, 128, 512, 2048):
            graph.set_ef(ef)
            labels, _ = graph.knn_query(dev, k=TOP, num_threads=1)
            found = sum(
                len(set(a.tolist()) & set(b.tolist())) for a, b in zip(labels, truth, strict=True)
            )
            run[f"recall@10 ef {ef}"] = round(found / truth.size, 3)
        print(json.dumps(run), file=sys.stderr, flush=True)
        runs.append(run)
    return runs


def report(results: list[dict[str, Any]], ef: int) -> str:
    lines = [
        "| tenant | chunks | exact: wall p50 / p95, CPU p50 ms | ANN: wall p50 / p95, CPU p50 ms "
        "| recall@10 | build (1 thread) | saved graph: read back | snapshot MB "
        "| graph MB (RSS / estimate / file) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        a, x = r["ann_by_ef"][ef], r["exact"]
        lines.append(
            f"| {r['tenant']} | {r['chunks']:,} | {x['p50']} / {x['p95']}, {x['cpu_p50']} "
            f"| {a['p50']} / {a['p95']}, {a['cpu_p50']} | {a['recall@10']} | {r['build_s']} s "
            f"| {r['load_s']} s | {r['snapshot_mb']} "
            f"| {r['graph_rss_mb']} / {r['graph_estimate_mb']} / {r['file_mb']} |"
        )
    lines += [
        "",
        "| tenant, 1 document in 4 (filter) | exact: wall p50 / p95, CPU p50 ms "
        "| ANN: wall p50 / p95, CPU p50 ms | recall@10 | searches the graph answered |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        f = r["filtered"]
        x, a = f["exact"], f["ann"]
        lines.append(
            f"| {r['tenant']} | {x['p50']} / {x['p95']}, {x['cpu_p50']} "
            f"| {a['p50']} / {a['p95']}, {a['cpu_p50']} | {f['recall@10']} "
            f"| {f['answered_by_graph']} |"
        )
    lines += [
        "",
        "| tenant | "
        + " | ".join(f"ef {e}: recall@10, CPU p50 ms, hit@5 vector / hybrid" for e in EFS)
        + " |",
    ]
    lines.append("| --- |" + " ---: |" * len(EFS))
    for r in results:
        cells = [
            f"{a['recall@10']}, {a['cpu_p50']}, "
            f"{a['dev']['vector']['hit@5']:.3f} / {a['dev']['hybrid']['hit@5']:.3f}"
            for a in (r["ann_by_ef"][e] for e in EFS)
        ]
        lines.append(f"| {r['tenant']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| tenant | vector hit@5 / evidence@5: exact | ANN | hybrid: exact | ANN |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        cells = [
            f"{r[k][mode]['hit@5']:.3f} / {r[k][mode]['evidence@5']:.3f}"
            for mode in ("vector", "hybrid")
            for k in ("dev_exact", "dev_ann")
        ]
        lines.append(f"| {r['tenant']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="reuse an ingested data directory")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 100])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--direct", action="store_true", help="also hnswlib alone on the largest tenant"
    )
    args = parser.parse_args()
    settings, dev = prepare(args.data_dir)
    root = settings.data_dir / "index"
    tenants = [BASE]
    for copies in args.sizes:
        began = time.perf_counter()
        tenants.append(replicate(root, copies))
        print(f"{tenants[-1]}: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    results = []
    for tenant in tenants:
        results.append(measure(root, tenant, dev, args.repeats))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(report(results, AnnConfig().ef_search))
    if args.direct:
        runs = direct(root, dev, tenants[-1])
        keys = list(runs[0])
        print("\n| " + " | ".join(keys) + " |\n|" + " --- |" * len(keys))
        for run in runs:
            print("| " + " | ".join(str(run[k]) for k in keys) + " |")
        results.append({"direct": runs})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
