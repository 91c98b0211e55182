"""Ingestion benchmark: the whole corpus through the running stack, end to end.

    python bench/ingestion.py [--corpus ../shared/corpus] [--json out.json]

Starts the stack (all services as processes) in a fresh data directory, ingests every PDF of the
corpus (both producers) and reports documents/s, chunks/s, seconds per embedding batch (from the
embedder-client's log), peak memory of each service (VmHWM) and the ratio of end-to-end chunks/s
to the bare model's chunks/s in its fastest configuration on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datatorag.settings import Settings  # noqa: E402
from datatorag.stack import Stack  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def run(corpus: Path) -> dict[str, object]:
    data_dir = Path(tempfile.mkdtemp(prefix="datatorag-bench-"))
    port, embedding_port = free_port(), free_port()
    env = {"DATATORAG_DATA_DIR": str(data_dir), "DATATORAG_PORT": str(port),
           "DATATORAG_EMBEDDING_PORT": str(embedding_port),
           "DATATORAG_EMBEDDING_URL": f"http://127.0.0.1:{embedding_port}",
           "DATATORAG_POLL_WAIT_S": "0.2", "DATATORAG_CONNECTOR_INTERVAL_S": "36000"}
    os.environ.update(env)
    settings = Settings(_env_file=None)
    stack = Stack(settings, env=env)
    stack.start()
    try:
        stack.wait_ready()
        from datatorag import wiring
        from datatorag.models import DocumentStatus
        from datatorag_connector.bootstrap import build_syncer
        from datatorag_connector.sources import open_source

        started = time.perf_counter()
        source = open_source(str(corpus / "pdf"))
        report = build_syncer(settings).sync(source, "bench")
        index = wiring.search_index(settings)
        ids = report.doc_ids
        while True:
            docs = [index.get_document("bench", d) for d in ids]
            if all(d and d.status in (DocumentStatus.INDEXED, DocumentStatus.FAILED) for d in docs):
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        peaks = {name: round(peak_rss_mib(p.pid), 1) for name, p in stack.processes.items()}
        batches = batch_seconds(stack.log("embedder-client"))
    finally:
        stack.stop()
    chunks = sum(d.chunk_count for d in docs if d)
    pages = sum(d.page_count or 0 for d in docs if d)
    return {
        "documents": len(ids),
        "failed": [d.source_uri for d in docs if d and d.status == DocumentStatus.FAILED],
        "pages": pages,
        "chunks": chunks,
        "seconds": round(elapsed, 1),
        "documents_per_s": round(len(ids) / elapsed, 2),
        "chunks_per_s": round(chunks / elapsed, 1),
        "batch32_p50_s": round(percentile(batches, 50), 3) if batches else None,
        "batch32_p95_s": round(percentile(batches, 95), 3) if batches else None,
        "batches_of_32": len(batches),
        "peak_rss_mib": peaks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args.corpus)
    from bench.model_throughput import fastest_chunks_per_second

    bare = fastest_chunks_per_second(args.corpus)
    result["bare_model_chunks_per_s"] = round(bare, 1)
    result["pipeline_to_model_ratio"] = round(float(result["chunks_per_s"]) / bare, 3)  # type: ignore[arg-type]
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
