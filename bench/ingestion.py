"""Ingestion benchmark: the whole corpus through the running stack, end to end.

    python bench/ingestion.py [--corpus ../shared/corpus] [--json out.json]

Starts the stack (all services as processes) in a fresh data directory, ingests every PDF of the
corpus (both producers) and reports documents/s, chunks/s, seconds per embedding batch of 32 (from
the embedder-client's log), the peak memory of each service (VmHWM) and the ratio of end-to-end
chunks/s to the bare model's chunks/s in its fastest configuration, measured in this process on
the very chunks the pipeline produced.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import CORPUS, ingest, running_stack
from datatorag.domain.models import DocumentStatus
from datatorag.domain.text import contextual_text, source_label


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def batch_seconds(log: Path) -> list[float]:
    seconds = []
    for line in log.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "embed.batch" and event.get("size") == 32:
            seconds.append(float(event["seconds"]))
    return seconds


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def indexed_texts(index_db: Path) -> list[str]:
    """The contextual texts the pipeline embedded, to time the bare model on the same input."""
    db = sqlite3.connect(index_db)
    rows = db.execute(
        "SELECT t.title, t.heading, t.text, d.metadata FROM chunks c"
        " JOIN chunk_texts t ON t.id = c.id JOIN documents d USING (doc_id)"
    )
    return [
        contextual_text(t, h, x, source_label(json.loads(m).get("path", ""))) for t, h, x, m in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with running_stack() as stack:
        docs, elapsed = ingest(stack.settings, args.corpus / "pdf", "bench")
        peaks = {name: round(peak_rss_mib(p.pid), 1) for name, p in stack.processes.items()}
        batches = batch_seconds(stack.log("embedder-client"))
        texts = indexed_texts(stack.settings.data_dir / "index" / "bench.db")
    from bench.model_throughput import fastest_chunks_per_second
    from datatorag_embedding_endpoint.cpu import resolve_runtime

    chunks = sum(d.chunk_count for d in docs)
    settings = stack.settings  # the bare model runs as the endpoint did
    runtime = resolve_runtime(settings.embedding_runtime, settings.embedding_precision)
    with tempfile.TemporaryDirectory() as cache:
        bare = fastest_chunks_per_second(
            passages=texts, runtime=runtime, cache_dir=Path(cache)
        ).chunks_per_s
    result = {
        "documents": len(docs),
        "failed": [d.source_uri for d in docs if d.status == DocumentStatus.FAILED],
        "pages": sum(d.page_count or 0 for d in docs),
        "chunks": chunks,
        "seconds": round(elapsed, 1),
        "documents_per_s": round(len(docs) / elapsed, 2),
        "chunks_per_s": round(chunks / elapsed, 1),
        "batch32_p50_s": round(pct(batches, 50), 3) if batches else None,
        "batch32_p95_s": round(pct(batches, 95), 3) if batches else None,
        "batches_of_32": len(batches),
        "peak_rss_mib": peaks,
        "bare_model_chunks_per_s": round(bare, 1),
        "pipeline_to_model_ratio": round(chunks / elapsed / bare, 3),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
