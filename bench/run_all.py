"""`make bench`: every benchmark in turn; raw results go to out/bench/, tables to stdout.

The figures recorded in docs/benchmarks.md come from these commands (each also runs alone).
Takes about 40-60 minutes on 2 cores (the 1,000-document sync alone 10-30); the load test needs
`wrk` (scripts/system-packages.sh).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "bench"

STEPS = [
    ("extraction accuracy", ["bench/extraction_accuracy.py", "--json", "extraction.json"]),
    ("bare model throughput", ["bench/model_throughput.py", "--json", "model.json"]),
    ("ingestion of the whole corpus", ["bench/ingestion.py", "--json", "ingestion.json"]),
    ("1,000-document sync from FTP", ["bench/ftp_sync.py", "--json", "ftp_sync.json"]),
    ("int8 against fp32: retrieval and query CPU", ["bench/int8_eval.py", "--json", "int8.json"]),
    ("index latency", ["bench/index_latency.py", "--sizes", "5000", "20000", "200000"]),
    ("HTTP load", ["bench/load.py", "--json", "load.json"]),
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
