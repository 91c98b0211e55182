"""What reading a passage's applicability costs a search, on the corpus's real chunks.

    .venv/bin/python bench/applicability.py

Every search labels the passages it returns (``applies_to``) and, for an employee, the
candidates it reads while filling the top k. This chunks every Markdown document of
``../shared/corpus/docs`` as the processor does, then times ``section_applicability`` over all
chunks, and counts how many chunks state a country. Prints a Markdown table.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from datatorag.domain.applicability import section_applicability
from datatorag.settings import Settings
from datatorag_processor.bootstrap import build_chunker
from datatorag_processor.extract import extract

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "docs"


def main() -> None:
    chunker = build_chunker(Settings(_env_file=None))  # type: ignore[call-arg]
    chunks = []
    for path in sorted(CORPUS.rglob("*.md")):
        doc = extract(path.read_bytes(), path.name, max_bytes=10**8, max_pages=1000)
        chunks += chunker.chunk("d", "v" * 12, path.stem, doc)
    timings, stated = [], 0
    for _ in range(5):
        started = time.perf_counter()
        for chunk in chunks:
            stated += bool(section_applicability(chunk.heading, chunk.text))
        timings.append((time.perf_counter() - started) / len(chunks))
    per_chunk_us = 1e6 * statistics.median(timings)
    print("| chunks | stating a country | per passage (median of 5 passes) | 10 passages |")
    print("| ---: | ---: | ---: | ---: |")
    ten_ms = 10 * per_chunk_us / 1000
    print(f"| {len(chunks)} | {stated // 5} | {per_chunk_us:.1f} µs | {ten_ms:.2f} ms |")


if __name__ == "__main__":
    main()
