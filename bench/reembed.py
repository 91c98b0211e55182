"""Re-embedding a tenant after a model change, while it is searched (issue 15).

    python bench/reembed.py [--corpus ../shared/corpus] [--json out.json]

Runs the whole stack, ingests the corpus's Markdown handbooks into one tenant with the bundled
model, then restarts the embedding endpoint on another real model (the same weights with CLS
pooling: another space of the same size) and runs ``datatorag reembed`` while one client
searches the tenant back to back. Reports the re-embed's documents, chunks and chunks/s, and the
searches' latency and mode (keyword-only before the swap, hybrid after) in each phase: before
the model change, while the endpoint restarts (it cannot embed questions: 503s), with the new
model before the re-embed, during it, after the swap.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import CORPUS, ingest, running_stack
from datatorag.settings import Settings, bundled_model_dir

TENANT = "bench"
QUERIES = [
    "How many weeks of parental leave do new parents get?",
    "Can I carry over unused vacation days?",
    "How do I get reimbursed for travel expenses?",
    "What happens if I am sick for more than a week?",
]


def cls_pooled_copy(target: Path) -> Path:
    """The bundled model with CLS pooling: the same weights, another embedding space."""
    source = bundled_model_dir()
    target.mkdir()
    for item in source.iterdir():
        if item.name != "1_Pooling":
            (target / item.name).symlink_to(item)
    (target / "1_Pooling").mkdir()
    config = json.loads((source / "1_Pooling" / "config.json").read_text())
    config.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    (target / "1_Pooling" / "config.json").write_text(json.dumps(config))
    return target


class Searcher(threading.Thread):
    """One client searching back to back; each answer's phase, latency and mode."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30)
        self.phase = "before"
        self.results: list[dict[str, Any]] = []
        self.done = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.done.is_set():
            query = QUERIES[i % len(QUERIES)] + f" ({i})"  # never a cached question vector
            started = time.perf_counter()
            response = self.client.post("/v1/search", json={"query": query, "top_k": 5})
            ms = 1000 * (time.perf_counter() - started)
            body = response.json() if response.status_code == 200 else {}
            self.results.append(
                {
                    "phase": self.phase,
                    "status": response.status_code,
                    "hits": len(body.get("hits", [])),
                    "keyword_only": body.get("keyword_only") is not None,
                    "ms": ms,
                }
            )
            i += 1


def summary(results: list[dict[str, Any]], phase: str) -> dict[str, Any]:
    rows = [r for r in results if r["phase"] == phase]
    ms = sorted(r["ms"] for r in rows)
    return {
        "searches": len(rows),
        "failed_or_empty": sum(r["status"] != 200 or r["hits"] == 0 for r in rows),
        "keyword_only": sum(r["keyword_only"] for r in rows),
        "p50_ms": round(statistics.median(ms), 1) if ms else None,
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1) if ms else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="datatorag-reembed-"))
    with running_stack(scratch / "data") as stack:
        settings = Settings(_env_file=None)
        docs, ingest_s = ingest(settings, args.corpus / "docs", TENANT)
        print(f"ingested {len(docs)} documents in {ingest_s:.1f} s", file=sys.stderr)
        key = subprocess.run(
            [str(Path(sys.executable).parent / "datatorag"), "keys", "create", "--tenant", TENANT],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        searcher = Searcher(settings.api_url, key)
        searcher.start()
        time.sleep(10)
        searcher.phase = "endpoint restarting on the new model"
        stack.env["DATATORAG_EMBEDDING_MODEL"] = str(cls_pooled_copy(scratch / "minilm-cls"))
        restarted = time.perf_counter()
        stack.restart("embedding-endpoint")
        stack.wait_ready(timeout=300)
        restart_s = time.perf_counter() - restarted
        searcher.phase = "model changed, before the re-embed"
        time.sleep(10)
        searcher.phase = "during the re-embed"
        started = time.perf_counter()
        result = subprocess.run(
            [str(Path(sys.executable).parent / "datatorag"), "reembed", "--tenant", TENANT],
            capture_output=True,
            text=True,
            check=False,
        )
        reembed_s = time.perf_counter() - started
        searcher.phase = "after the swap"
        time.sleep(10)
        searcher.done.set()
        searcher.join()
    if result.returncode != 0:
        sys.exit(f"reembed failed: {result.stderr[-2000:]}")
    last = result.stdout.strip().splitlines()[-1]
    chunks = int(last.split(" documents, ")[1].split(" chunks")[0])
    report = {
        "documents": len(docs),
        "chunks": chunks,
        "endpoint_restart_s": round(restart_s, 1),
        "reembed_s": round(reembed_s, 1),
        "chunks_per_s": round(chunks / reembed_s, 1),
        "reembed_output": last,
        "searches": {
            phase: summary(searcher.results, phase)
            for phase in dict.fromkeys(r["phase"] for r in searcher.results)
        },
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
