"""Latency of the embedded search index: keyword, vector and filtered queries by corpus size.

    .venv/bin/python bench/index_latency.py                      # 5k, 20k and 200k chunks
    .venv/bin/python bench/index_latency.py --sizes 5000 --queries 100
    .venv/bin/python bench/index_latency.py --quality            # stemming / weight choices

Chunks are synthetic: text drawn from the sentences of ``../shared/corpus/truth``, random unit
vectors (384 dimensions, as all-MiniLM-L6-v2), 20 chunks per document, filterable metadata.
Keyword queries are the dev questions. Prints Markdown tables (for docs/benchmarks.md): build
rate, the first query of a fresh process (it loads the vectors and the BM25 postings) and the
postings' memory, then query latencies.

``--quality`` indexes the real ground-truth texts once per configuration and reports how often
keyword search puts a gold document of a dev question in the top 5 (doc recall@5) and the MRR@10,
which is how stemming, stop words and column weights in ``bm25.py`` were chosen (word tokens were
chosen over trigrams when keyword search still ran on SQLite FTS5).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "core"))

from datatorag.adapters.index.sqlite import SqliteSearchIndex, bm25  # noqa: E402
from datatorag.domain import keywords  # noqa: E402
from datatorag.domain.models import DocumentRecord, IndexedChunk  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"
DIMENSION = 384
CHUNKS_PER_DOC = 20
SOURCES = ["ftp-hr", "sftp-legal", "upload", "sharepoint"]
MEDIA_TYPES = ["application/pdf", "text/html", "application/vnd.openxmlformats"]
COUNTRIES = ["US", "FR", "DE", "GB", "JP"]
TENANT = "bench"
FILTERS: dict[str, dict[str, Any]] = {
    "source (1 in 4)": {"source_id": "ftp-hr"},
    "country + date (1 in 20)": {
        "metadata.country": "FR",
        "effective_date": {"gte": "2024-01-01", "lte": "2024-12-31"},
    },
}


def sentences() -> list[list[str]]:
    """The sentences of each ground-truth text, one list per file."""
    found = []
    for path in sorted((CORPUS / "truth").rglob("*.txt")):
        text = re.sub(r"\s+", " ", path.read_text())
        found.append([s for s in re.split(r"(?<=[.!?])\s", text) if 20 < len(s) < 400])
    return [f for f in found if f]


def passage(sentences: list[str], start: int, count: int = 6) -> str:
    """``count`` consecutive sentences (wrapping): chunks keep the topic of their document."""
    return " ".join(sentences[(start + i) % len(sentences)] for i in range(count))


def questions() -> list[dict[str, Any]]:
    lines = (CORPUS / "questions-dev.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    rows = rng.normal(size=(n, DIMENSION)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def build(
    index: SqliteSearchIndex, size: int, pool: list[list[str]], rng: np.random.Generator
) -> float:
    """Index ``size`` synthetic chunks; returns the seconds it took.

    Document ``d`` takes its text from truth file ``d mod files`` at a random offset, so terms
    cluster by topic as in a real collection (one chunk of random sentences each would make
    every word match most chunks, and keyword queries needlessly slow).
    """
    started = time.perf_counter()
    for d in range(size // CHUNKS_PER_DOC):
        build_document(index, rng, pool, d)
    return time.perf_counter() - started


def build_document(
    index: SqliteSearchIndex,
    rng: np.random.Generator,
    pool: list[list[str]],
    d: int,
    tenant: str = TENANT,
) -> None:
    """Index document ``d``: ``CHUNKS_PER_DOC`` chunks of truth file ``d mod files``."""
    doc_id = f"doc{d:06d}"
    source = pool[d % len(pool)]
    offset = int(rng.integers(0, len(source)))
    year = 2019 + d % 8
    index.upsert_document(
        DocumentRecord(
            tenant=tenant,
            doc_id=doc_id,
            source_id=SOURCES[d % len(SOURCES)],
            source_uri=f"ftp://hr.example/{doc_id}.pdf",
            title=source[0][:60],
            media_type=MEDIA_TYPES[d % len(MEDIA_TYPES)],
            version="v1",
            metadata={
                "country": COUNTRIES[d % len(COUNTRIES)],
                "effective_date": f"{year}-{1 + d % 12:02d}-01",
            },
        )
    )
    vectors = unit_rows(rng, CHUNKS_PER_DOC)
    chunks = [
        IndexedChunk(
            chunk_id=f"{doc_id}:{i}",
            doc_id=doc_id,
            ordinal=i,
            text=passage(source, offset + 6 * i),
            pages=[1 + i // 3],
            heading="",
            vector=vectors[i].tolist(),
        )
        for i in range(CHUNKS_PER_DOC)
    ]
    index.replace_chunks(tenant, doc_id, "v1", chunks)


def timed(calls: Iterator[Callable[[], object]]) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds (all threads of the process: BLAS included) per call."""
    wall, cpu = [], []
    for call in calls:
        started, cpu_started = time.perf_counter(), time.process_time()
        call()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    return wall, cpu


def summary(times: tuple[list[float], list[float]]) -> str:
    wall, cpu = times
    p95 = statistics.quantiles(wall, n=20)[18]
    return f"{statistics.median(wall):.1f} | {p95:.1f} | {statistics.median(cpu):.1f}"


def latency(sizes: list[int], count: int) -> None:
    pool, asked = sentences(), [q["question"] for q in questions()]
    setup, queries = [], []
    for size in sizes:
        with tempfile.TemporaryDirectory() as root:
            index = SqliteSearchIndex(Path(root))
            setup.append(prepare(index, size, pool))
            queries += [f"| {size:,} | {row}" for row in measure(index, count, asked)]
            index.close()
        print(f"measured {size:,} chunks", file=sys.stderr, flush=True)
    print(
        "| chunks | build (chunks/s) | first vector query (load) | first keyword query of a "
        "fresh process (load) | postings MB | vector query after a swap |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(setup))
    print("\n| chunks | query | p50 ms | p95 ms | CPU p50 ms |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(queries))
    print(f"\n{count} queries each, top 10, one thread, after a warm-up query. Keyword queries are")
    print("the dev questions; CPU counts every thread of the process (BLAS included).")


def prepare(index: SqliteSearchIndex, size: int, pool: list[list[str]]) -> str:
    rng = np.random.default_rng(size)
    seconds = build(index, size, pool, rng)
    query = unit_rows(rng, 1)[0]
    load = timed(iter([partial(index.vector_search, TENANT, query, 10)]))[0][0]
    fresh = SqliteSearchIndex(index.root)  # another process: its own snapshot
    first_keyword = timed(iter([partial(fresh.keyword_search, TENANT, "parental leave", 10)]))
    snapshot = fresh._snapshots.peek(TENANT)  # private: the bench reports its size
    assert snapshot is not None
    megabytes = (snapshot.postings.nbytes + snapshot.lengths.nbytes) / 2**20
    fresh.close()
    catch_up = swap_latency(index, pool, rng, query)
    return (
        f"| {size:,} | {seconds:.0f} s ({size / seconds:,.0f}) | {load:.0f} ms "
        f"| {first_keyword[0][0]:.0f} ms | {megabytes:.0f} | {catch_up:.1f} ms |"
    )


def measure(index: SqliteSearchIndex, count: int, asked: list[str]) -> list[str]:
    vectors = unit_rows(np.random.default_rng(1), count)
    texts = [asked[i % len(asked)] for i in range(count)]
    rows = []
    for name, filters in [("", None), *FILTERS.items()]:
        keyword = (partial(index.keyword_search, TENANT, t, 10, filters) for t in texts)
        vector = (partial(index.vector_search, TENANT, v, 10, filters) for v in vectors)
        index.keyword_search(TENANT, texts[0], 10, filters)  # warm-up (filter masks, caches)
        index.vector_search(TENANT, vectors[0], 10, filters)
        rows.append(f"keyword {name} | {summary(timed(keyword))} |")
        rows.append(f"vector {name} | {summary(timed(vector))} |")
    return rows


def swap_latency(
    index: SqliteSearchIndex, pool: list[list[str]], rng: np.random.Generator, query: Any
) -> float:
    """Median time of the first vector query after one document is re-indexed."""
    times = []
    for round_ in range(5):
        doc = index.get_document(TENANT, "doc000000")
        assert doc is not None
        version = f"v{round_ + 2}"
        index.upsert_document(doc.model_copy(update={"version": version}))
        vectors = unit_rows(rng, CHUNKS_PER_DOC)
        chunks = [
            IndexedChunk(
                chunk_id=f"doc000000:{version}:{i}",
                doc_id="doc000000",
                ordinal=i,
                text=passage(pool[0], 6 * i),
                vector=vectors[i].tolist(),
            )
            for i in range(CHUNKS_PER_DOC)
        ]
        index.replace_chunks(TENANT, "doc000000", version, chunks)
        times += timed(iter([partial(index.vector_search, TENANT, query, 10)]))[0]
    return statistics.median(times)


# -- keyword quality of stemming, stop words and weights -------------------------------------------

CONFIGS: dict[str, tuple[bool, bool, tuple[float, float, float]]] = {
    "porter, stop words, title x2 (chosen)": (True, True, (2.0, 1.0, 1.0)),
    "porter, stop words, equal weights": (True, True, (1.0, 1.0, 1.0)),
    "porter, no stop words, title x2": (True, False, (2.0, 1.0, 1.0)),
    "porter, stop words, title x5": (True, True, (5.0, 1.0, 1.0)),
    "no stemming, stop words, title x2": (False, True, (2.0, 1.0, 1.0)),
}


def windows(text: str, size: int = 180, overlap: int = 30) -> Iterator[str]:
    words = text.split()
    for start in range(0, max(len(words) - overlap, 1), size - overlap):
        yield " ".join(words[start : start + size])


def quality() -> None:
    manifest = json.loads((CORPUS / "manifest.json").read_text())["documents"]
    asked = [q for q in questions() if q["doc_ids"]]
    vector = [0.0] * DIMENSION
    vector[0] = 1.0
    print("| configuration | doc recall@5 | MRR@10 | mean query ms |")
    print("| --- | --- | --- | --- |")
    defaults = bm25.stems, keywords.STOP_WORDS, bm25.BM25_WEIGHTS
    for name, (stemming, stop_words, weights) in CONFIGS.items():
        bm25.stems = defaults[0] if stemming else list  # type: ignore[assignment]
        keywords.STOP_WORDS = defaults[1] if stop_words else frozenset()
        bm25.BM25_WEIGHTS = weights
        with tempfile.TemporaryDirectory() as root:
            index = SqliteSearchIndex(Path(root))
            for doc in manifest:
                pdf = doc["pdfs"][0]
                index.upsert_document(
                    DocumentRecord(
                        tenant=TENANT,
                        doc_id=doc["id"],
                        source_id=doc["source"],
                        source_uri=pdf["pdf"],
                        title=doc["title"],
                        version="v1",
                    )
                )
                text = (CORPUS / pdf["truth"]).read_text()
                chunks = [
                    IndexedChunk(
                        chunk_id=f"{doc['id']}:{i}",
                        doc_id=doc["id"],
                        ordinal=i,
                        text=window,
                        vector=vector,
                    )
                    for i, window in enumerate(windows(text))
                ]
                index.replace_chunks(TENANT, doc["id"], "v1", chunks)
            recall, rr, spent = 0, 0.0, 0.0
            for q in asked:
                started = time.perf_counter()
                hits = index.keyword_search(TENANT, q["question"], 10)
                spent += time.perf_counter() - started
                ranked = list(dict.fromkeys(h.doc_id for h in hits))
                gold = [r for r, d in enumerate(ranked, 1) if d in q["doc_ids"]]
                recall += bool(gold and gold[0] <= 5)
                rr += 1 / gold[0] if gold else 0.0
            index.close()
        n = len(asked)
        print(f"| {name} | {recall / n:.2f} | {rr / n:.3f} | {spent / n * 1000:.1f} |", flush=True)
    bm25.stems, keywords.STOP_WORDS, bm25.BM25_WEIGHTS = defaults
    print(f"\n{len(asked)} answerable dev questions; {len(manifest)} documents, 180-word chunks.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 200_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--quality", action="store_true", help="compare stemming and weights")
    args = parser.parse_args()
    if args.quality:
        quality()
    else:
        latency(args.sizes, args.queries)


if __name__ == "__main__":
    main()
