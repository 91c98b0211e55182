"""Approximate vector search (hnswlib) against exact search, at 1x, 10x and 100x one tenant.

    python bench/ann.py [--data-dir DIR] [--sizes 10 100] [--real 10 100] [--repeats 5]
                        [--json out.json] [--direct]

Ingests the corpus's LibreOffice PDFs through the running stack into tenant ``eval`` (a reused
``--data-dir`` keeps it) and embeds the dev questions with the same endpoint, and the distractor
passages the ``--real`` tenants need (``bench/distractors.py``; cached in the data directory as
``distractors.npy``, so a rerun embeds nothing); then stops the stack. Tenants, written through
the port (``upsert_document`` + ``replace_chunks``):

- ``real-<n>x`` (``--real``): the 1x documents as they are, plus as many distinct distractor
  passages (2-4 real sentences of one handbook page each, real model vectors, documents
  ``distractor-<n>``) as make ``n`` times the 1x chunks: distinct texts, as real tenants hold.
- ``ann-<n>x`` (``--sizes``): each 1x document ``n`` times, copy 0 as it is, copy i > 0 under the
  document id ``<id>-copy-<i>`` with every chunk vector moved by a small random perturbation
  (cosine ~0.95 to the original, renormalised) and the same text: near-duplicates, the hardest
  input for HNSW.

For each tenant, in this process and on the real index code (``SqliteSearchIndex``): latency of
``vector_search`` (top 10, through the port: snapshot, graph or matrix, SQLite row fetch) p50 /
p95, exact and as served by default; the graph's build and calibration times (1 thread, as in
the background), the ef the calibration chose (or exact search) and its recall; memory (RSS
growth, and the estimate the snapshot budget counts); reading the saved graph back; by ``ef``,
recall@10 against exact search of the calibration's own queries, of the dev questions and of
those plus 200 queries near random chunks, and retrieval on the dev set (hit@5, evidence@5,
vector and hybrid); the same retrieval exact and as served. ``--direct`` adds hnswlib alone on
the largest near-copy tenant's vectors, and on as many copies moved along the corpus's own spread
instead, by M, ef_construction and ef.
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

from bench import distractors
from bench.harness import CORPUS, ingest, manifest_id, questions, running_stack
from bench.load import chunks_of, copy_chunk_id, indexed_documents
from bench.retrieval_eval import TOP, corpus_loose, score
from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.adapters.index.sqlite.ann import (
    EF_LADDER,
    AnnConfig,
    Graph,
    GraphFiles,
    M,
    build_index,
    graph_nbytes,
    load_index,
)
from datatorag.adapters.index.sqlite.ann import measure as measure_graph
from datatorag.adapters.index.sqlite.calibration import QUERIES as CALIBRATION_QUERIES
from datatorag.adapters.index.sqlite.calibration import kth_scores, recall_at, sample_queries
from datatorag.domain.models import DocumentFacts, DocumentStatus, IndexedChunk
from datatorag.settings import Settings

BASE = "eval"
EFS = EF_LADDER
NOISE = 0.3  # perturbation of a copy's vectors: cosine ~0.95 to the original


def prepare(data_dir: Path | None, largest: dict[str, int]) -> tuple[Settings, np.ndarray]:
    """The ingested 1x tenant, the dev questions' vectors and, for each kind of distractors, the
    vectors of the passages a tenant of ``largest[kind]`` times its chunks needs (all cached in
    the data directory)."""
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
        chunks = sum(d.chunk_count for d in indexed_documents(index, BASE))
        for kind, size in largest.items():
            embed_distractors(settings, kind, (size - 1) * chunks)
        index.close()
        return settings, np.load(cached)


KINDS = ("real", "other")  # distractors from every page; from pages no dev answer is on


def excluded(kind: str) -> frozenset[str]:
    return frozenset(distractors.gold_pages(CORPUS)) if kind == "other" else frozenset()


def distractor_cache(settings: Settings, kind: str) -> Path:
    return settings.data_dir / ("distractors.npy" if kind == "real" else f"distractors-{kind}.npy")


def embed_distractors(settings: Settings, kind: str, count: int) -> None:
    """Embed the first ``count`` distractor passages with the stack's endpoint, once: the
    cache grows in slices of 4,096, so an interrupted run resumes."""
    from datatorag import wiring

    if not count:
        return
    cache = distractor_cache(settings, kind)
    done = np.load(cache) if cache.exists() else np.zeros((0, 0), np.float32)
    if len(done) >= count:
        return
    found = distractors.passages(CORPUS, count, exclude=excluded(kind))[0]
    texts = [f"{heading}\n{text}" for heading, text in found]
    embeddings = wiring.embeddings(settings)
    began, first = time.perf_counter(), len(done)
    for start in range(len(done), count, 4096):
        batch = embeddings.embed(texts[start : start + 4096])
        done = np.concatenate([done.reshape(-1, batch.shape[1]), batch]).astype(np.float32)
        np.save(cache, done)
        rate = (len(done) - first) / (time.perf_counter() - began)
        print(f"distractors embedded: {len(done):,} ({rate:.0f}/s)", file=sys.stderr, flush=True)


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


def with_distractors(root: Path, kind: str, size: int, vectors: np.ndarray) -> str:
    """Tenant ``<kind>-<size>x``: the 1x documents as they are, and as many distinct distractor
    passages (``bench/distractors.py``, real model vectors) as make ``size`` times its chunks,
    in documents ``distractor-<n>`` of ``distractors.PER_DOC`` passages."""
    import sqlite3

    target = f"{kind}-{size}x"
    index = SqliteSearchIndex(root, ann=AnnConfig(min_chunks=0))
    originals = indexed_documents(index, BASE)
    space = index.vector_space(BASE)  # the endpoint's, which embedded the distractors too
    with closing(sqlite3.connect(f"file:{root / BASE}.db?mode=ro", uri=True)) as db:
        base = {doc.doc_id: chunks_of(db, doc.doc_id) for doc in originals}
    count = size * sum(len(c) for c in base.values()) - sum(len(c) for c in base.values())
    per_doc = distractors.PER_DOC
    if len(indexed_documents(index, target)) == len(originals) + -(-count // per_doc):
        index.close()
        return target
    if len(vectors) < count:
        raise SystemExit(f"{count} distractors needed, {len(vectors)} embedded")
    for doc in originals:
        index.upsert_document(doc.model_copy(update={"tenant": target, "chunk_count": 0}))
        facts = DocumentFacts(title=doc.title, page_count=doc.page_count)
        chunks = [IndexedChunk(doc_id=doc.doc_id, **c) for c in base[doc.doc_id]]
        index.replace_chunks(target, doc.doc_id, doc.version, chunks, facts=facts, space=space)
    passages = distractors.passages(CORPUS, count, exclude=excluded(kind))[0]
    template = originals[0]
    for n, start in enumerate(range(0, count, per_doc)):
        doc_id = f"distractor-{n:05d}"
        index.upsert_document(
            template.model_copy(
                update={
                    "tenant": target,
                    "doc_id": doc_id,
                    "source_uri": f"bench://distractors/{doc_id}",
                    "title": passages[start][0],
                    "version": "v1",
                    "status": DocumentStatus.FETCHED,
                    "chunk_count": 0,
                    "metadata": {},
                }
            )
        )
        chunks = [
            IndexedChunk(
                chunk_id=f"{doc_id}:v1:{i}",
                doc_id=doc_id,
                ordinal=i,
                heading=passages[start + i][0],
                text=passages[start + i][1],
                token_count=len(passages[start + i][1].split()),
                vector=vectors[start + i].tolist(),
            )
            for i in range(min(per_doc, count - start))
        ]
        facts = DocumentFacts(title=doc_id)
        index.replace_chunks(target, doc_id, "v1", chunks, facts=facts, space=space)
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

    def __init__(self, texts: list[str], vectors: np.ndarray, space: str | None) -> None:
        self.rows = dict(zip(texts, vectors, strict=True))
        self.dimension = vectors.shape[1]
        self.space = space

    def embed(self, texts: Any) -> np.ndarray:
        return np.stack([self.rows[t] for t in texts])

    def embed_in_space(self, texts: Any) -> Any:
        from datatorag.ports import Embedded

        return Embedded(self.embed(texts), self.space or "")


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
    # Built and measured as the index does it in the background (1 thread), timed apart.
    default = AnnConfig(min_chunks=1, background=False)
    vectors = np.ascontiguousarray(snapshot.matrix[snapshot.alive])
    labels = snapshot.rowids[snapshot.alive]
    began, before = time.perf_counter(), rss_bytes()
    index = build_index(vectors, labels, default)
    result["build_s"] = round(time.perf_counter() - began, 2)
    result["graph_rss_mb"] = round((rss_bytes() - before) / 2**20, 1)
    began = time.perf_counter()
    chosen = measure_graph(index, vectors, labels, default)
    result["calibration_s"] = round(time.perf_counter() - began, 2)
    result["calibration"] = {"ef": chosen.ef, "recall@10": chosen.recall}
    result["graph_estimate_mb"] = round(graph_nbytes(len(labels), vectors.shape[1], M) / 2**20, 1)
    # The calibration's queries against the dev questions' and queries near chunks, by ef.
    cal_queries = sample_queries(vectors, CALIBRATION_QUERIES)
    cal_kth = kth_scores(vectors, cal_queries, TOP)
    # Saved as served at every ef (a record under the bar 0), so that the sweep below searches
    # through the port with this graph whatever its calibration chose.
    sweep_config = AnnConfig(min_chunks=1, background=False, min_recall=0.0)
    files = GraphFiles(root, tenant, snapshot.epoch)
    forced = Graph(index, int(labels.max()), len(labels), 0, EFS[0], 0.0)
    began = time.perf_counter()
    files.save(forced, sweep_config)
    result["save_s"] = round(time.perf_counter() - began, 2)
    result["file_mb"] = round(files.graph.stat().st_size / 2**20, 1)
    began = time.perf_counter()
    load_index(files.graph, vectors.shape[1])  # what a process loading the tenant does
    result["load_s"] = round(time.perf_counter() - began, 2)
    ann = SqliteSearchIndex(root, ann=sweep_config)
    ann.vector_search(tenant, dev[0].tolist(), TOP)  # loads the snapshot and the saved graph
    queries = np.concatenate([dev, near_chunks(snapshot.matrix, 200)])
    ann_snapshot = ann._snapshots.peek(tenant)
    assert ann_snapshot is not None and ann_snapshot.graphs.graph is not None
    graph = ann_snapshot.graphs.graph.index
    sweep = {}
    texts = [str(q["question"]) for q in questions(CORPUS / "questions-dev.jsonl")]
    embeddings = CachedQuestions(texts, dev, exact.vector_space(BASE))
    for ef in EFS:
        graph.set_ef(ef)
        sweep[ef] = {
            "calibration recall@10": round(recall_at(graph, cal_queries, cal_kth, TOP, ef, 1), 4),
            "dev recall@10": recall(exact, ann, tenant, dev),
            "recall@10": recall(exact, ann, tenant, queries),
        }
        sweep[ef].update(latencies(ann, tenant, dev, repeats))
        sweep[ef]["dev"] = dev_retrieval(ann, tenant, embeddings)
    result["ann_by_ef"] = sweep
    ann.close()
    # What the index serves by default: the saved graph measured against the default bar
    # (the record under bar 0 does not count), at the ef it chose, or exact search.
    served = SqliteSearchIndex(root, ann=default)
    result["served"] = latencies(served, tenant, dev, repeats)
    served_snapshot = served._snapshots.peek(tenant)
    assert served_snapshot is not None and served_snapshot.graphs.graph is not None
    result["served"]["ef"] = served_snapshot.graphs.graph.ef
    # A filter passing every 4th document (by id): oversampled from the graph, then filtered.
    quarter = sorted(served_snapshot.codes)[::4]
    where = {"doc_id": quarter}
    answered = served.approximate.answered
    result["filtered"] = {
        "exact": latencies(exact, tenant, dev, repeats, where),
        "served": latencies(served, tenant, dev, repeats, where),
        "recall@10": recall(exact, served, tenant, queries, where),
        "answered_by_graph": served.approximate.answered - answered,
    }
    result["answered"] = (served.approximate.answered, served.approximate.asked)
    result["dev_exact"] = dev_retrieval(exact, tenant, embeddings)
    result["dev_served"] = dev_retrieval(served, tenant, embeddings)
    exact.close()
    served.close()
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


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        "| tenant | chunks | exact: wall p50 / p95, CPU p50 ms | served: ef, wall p50 / p95, "
        "CPU p50 ms | calibration recall@10 | build / calibration (1 thread) | saved graph "
        "read back | snapshot MB | graph MB (RSS / estimate / file) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        a, x = r["served"], r["exact"]
        lines.append(
            f"| {r['tenant']} | {r['chunks']:,} | {x['p50']} / {x['p95']}, {x['cpu_p50']} "
            f"| {a['ef'] or 'exact'}, {a['p50']} / {a['p95']}, {a['cpu_p50']} "
            f"| {r['calibration']['recall@10']} | {r['build_s']} s / {r['calibration_s']} s "
            f"| {r['load_s']} s | {r['snapshot_mb']} "
            f"| {r['graph_rss_mb']} / {r['graph_estimate_mb']} / {r['file_mb']} |"
        )
    lines += [
        "",
        "| tenant, 1 document in 4 (filter) | exact: wall p50 / p95, CPU p50 ms "
        "| served: wall p50 / p95, CPU p50 ms | recall@10 | searches the graph answered |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        f = r["filtered"]
        x, a = f["exact"], f["served"]
        lines.append(
            f"| {r['tenant']} | {x['p50']} / {x['p95']}, {x['cpu_p50']} "
            f"| {a['p50']} / {a['p95']}, {a['cpu_p50']} | {f['recall@10']} "
            f"| {f['answered_by_graph']} |"
        )
    lines += [
        "",
        "| tenant | ef | recall@10: calibration / dev questions / dev + near chunks "
        "| CPU p50 ms | hit@5 vector / hybrid | evidence@5 vector / hybrid |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        for ef, a in r["ann_by_ef"].items():
            d = a["dev"]
            lines.append(
                f"| {r['tenant']} | {ef} | {a['calibration recall@10']} / {a['dev recall@10']} "
                f"/ {a['recall@10']} | {a['cpu_p50']} "
                f"| {d['vector']['hit@5']:.3f} / {d['hybrid']['hit@5']:.3f} "
                f"| {d['vector']['evidence@5']:.3f} / {d['hybrid']['evidence@5']:.3f} |"
            )
    lines += [
        "",
        "| tenant | vector hit@5 / evidence@5: exact | served | hybrid: exact | served |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        cells = [
            f"{r[k][mode]['hit@5']:.3f} / {r[k][mode]['evidence@5']:.3f}"
            for mode in ("vector", "hybrid")
            for k in ("dev_exact", "dev_served")
        ]
        lines.append(f"| {r['tenant']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="reuse an ingested data directory")
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[10, 100], help="tenants of near-copies"
    )
    parser.add_argument(
        "--real", type=int, nargs="*", default=[10, 100], help="tenants with distractors"
    )
    parser.add_argument(
        "--other",
        type=int,
        nargs="*",
        default=[],
        help="tenants with distractors from pages no dev answer is on",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--direct", action="store_true", help="also hnswlib alone on the largest tenant"
    )
    args = parser.parse_args()
    sizes = {"real": args.real, "other": args.other}
    settings, dev = prepare(args.data_dir, {k: max(v) for k, v in sizes.items() if v})
    root = settings.data_dir / "index"
    tenants = [BASE]
    for copies in args.sizes:
        began = time.perf_counter()
        tenants.append(replicate(root, copies))
        print(f"{tenants[-1]}: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    for kind in KINDS:
        if sizes[kind]:
            vectors = np.load(distractor_cache(settings, kind), mmap_mode="r")
        for size in sizes[kind]:
            began = time.perf_counter()
            tenants.append(with_distractors(root, kind, size, vectors))
            print(f"{tenants[-1]}: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    results = []
    for tenant in tenants:
        results.append(measure(root, tenant, dev, args.repeats))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(report(results))
    if args.direct:
        runs = direct(root, dev, f"ann-{max(args.sizes)}x")
        keys = list(runs[0])
        print("\n| " + " | ".join(keys) + " |\n|" + " --- |" * len(keys))
        for run in runs:
            print("| " + " | ".join(str(run[k]) for k in keys) + " |")
        results.append({"direct": runs})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
