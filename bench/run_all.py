"""`make bench`: every benchmark in turn; raw results go to out/bench/, tables to stdout.

The figures recorded in docs/benchmarks.md come from these commands (each also runs alone).
Takes about 95-140 minutes on 2 cores (OCR of the 511 scanned pages about 20 of them, the
1,000-document sync 10-30, the 1,000 tenants behind the API about 20, approximate search 15-40:
it embeds 116k short passages); the load test needs
`wrk`, OCR `tesseract`, the portal `chromium` (scripts/system-packages.sh).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "bench"

STEPS = [
    ("extraction accuracy", ["bench/extraction_accuracy.py", "--json", "extraction.json"]),
    (
        "OCR of scanned pages (accuracy, CPU, robustness)",
        ["bench/ocr_accuracy.py", "--jobs", "2", "--robustness", "--json", "ocr.json"],
    ),
    ("bare model throughput", ["bench/model_throughput.py", "--json", "model.json"]),
    ("ingestion of the whole corpus", ["bench/ingestion.py", "--json", "ingestion.json"]),
    ("1,000-document sync from FTP", ["bench/ftp_sync.py", "--json", "ftp_sync.json"]),
    ("int8 against fp32: retrieval and query CPU", ["bench/int8_eval.py", "--json", "int8.json"]),
    ("embedding spaces", ["bench/vector_spaces.py", "--json", "vector_spaces.json"]),
    ("re-embedding under search", ["bench/reembed.py", "--json", "reembed.json"]),
    ("index latency", ["bench/index_latency.py", "--sizes", "5000", "20000", "200000"]),
    (
        "approximate vector search at 10x and 100x (distinct passages, near-copies)",
        ["bench/ann.py", "--json", "ann.json"],
    ),
    ("1,000 tenants in one index: memory and hot/cold search", ["bench/tenant_snapshots.py"]),
    (
        "1,000 tenants behind the API: memory and hot/cold /v1/search",
        ["bench/tenants_api.py", "--json", "tenants_api.json"],
    ),
    ("HTTP load", ["bench/load.py", "--json", "load.json"]),
    ("portal first paint", ["bench/portal.py", "--json", "portal.json"]),
]


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, argv in STEPS:
        print(f"\n## {name}: python {' '.join(argv)}\n", flush=True)
        args = [str(OUT / a) if a.endswith(".json") else a for a in argv]
        if subprocess.run([sys.executable, *args], cwd=REPO, check=False).returncode:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
