"""The plan's success metric: a sync of N documents (default 1,000) from FTP through the stack.

    python bench/ftp_sync.py [--documents 1000] [--bare-sample 640] [--bare-repeats 3]
                             [--json out.json]

The corpus's PDFs (both producers) are replicated to N files, each with distinct bytes: copy i is
the original with a PDF comment line (``%datatorag-bench copy i``) appended after its ``%%EOF``,
which PDF readers skip, so every copy is a valid PDF with its own content hash and is parsed,
chunked and embedded like a new document. The files are served by the real FTP server the tests
use (pyftpdlib on loopback, ``tests/fixtures/file_servers.py``), synced with ``ftp://`` into one
tenant of the running stack on the embedded default, and timed until every document is indexed
or failed. Reports documents/s, chunks/s and the pipeline/bare-model ratio exactly as
``bench/ingestion.py`` does; the bare model embeds a random sample (``--bare-sample`` texts) of
the very contextual texts the pipeline embedded, in the same process and run, in the runtime and
precision the endpoint ran full batches in, ``--bare-repeats`` times (the best run counts). The
endpoint's ``/stats`` give the mean number of texts per forward pass.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import CORPUS, ingest, running_stack
from bench.ingestion import batch_seconds, indexed_texts, pct, peak_rss_mib
from datatorag.domain.models import DocumentStatus
from tests.fixtures.file_servers import ftp_uri, running_ftp_server


def replicate(pdfs: list[Path], n: int, root: Path) -> int:
    """Write ``n`` distinct valid PDFs under ``root``, cycling over ``pdfs``; returns bytes."""
    import pypdfium2

    total = 0
    for i, original in zip(range(n), itertools.cycle(pdfs), strict=False):
        target = root / original.parent.parent.name / original.parent.name
        target.mkdir(parents=True, exist_ok=True)
        data = original.read_bytes() + f"\n%datatorag-bench copy {i}\n".encode()
        path = target / f"{original.stem}-{i:04d}.pdf"
        path.write_bytes(data)
        total += len(data)
        if i < len(pdfs):  # one copy of each original is opened, to prove the edit is harmless
            pypdfium2.PdfDocument(path).close()
    return total


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--bare-sample", type=int, default=640)
    parser.add_argument("--bare-repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    # pyftpdlib configures logging at INFO (a line per file sent) unless its logger has a handler.
    logging.getLogger("pyftpdlib").addHandler(logging.NullHandler())
    logging.getLogger("pyftpdlib").propagate = False
    pdfs = sorted((args.corpus / "pdf").glob("*/*/*.pdf"))
    with tempfile.TemporaryDirectory(prefix="ftp-root-") as tmp:
        root = Path(tmp)
        size = replicate(pdfs, args.documents, root)
        load_before = load()
        with running_ftp_server(root) as port, running_stack() as stack:
            docs, elapsed = ingest(stack.settings, ftp_uri(port), "bench")
            load_after = load()
            peaks = {name: round(peak_rss_mib(p.pid), 1) for name, p in stack.processes.items()}
            batches = batch_seconds(stack.log("embedder-client"))
            texts = indexed_texts(stack.settings.data_dir / "index" / "bench.db")
            passes = httpx.get(f"{stack.settings.embedding_url}/stats").json()
    chunks = sum(d.chunk_count for d in docs)
    print(
        f"synced {len(docs)} documents, {chunks} chunks in {elapsed:.0f} s "
        f"({chunks / elapsed:.1f} chunks/s); load {load_before} -> {load_after}; "
        f"endpoint {passes}",
        file=sys.stderr,
        flush=True,
    )
    from bench.model_throughput import fastest_chunks_per_second
    from datatorag_embedding_endpoint.cpu import resolve_precision, resolve_runtime

    settings = stack.settings  # the bare model runs as the endpoint ran full batches
    runtime = resolve_runtime(settings.embedding_runtime, settings.embedding_precision)
    precision = "fp32" if runtime == "onnx" else resolve_precision(settings.embedding_precision)
    sample = random.Random(15).sample(texts, min(args.bare_sample, len(texts)))
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        bare = fastest_chunks_per_second(
            passages=sample,
            runtime=runtime,
            precisions=[precision],
            cache_dir=Path(cache),
            repeats=args.bare_repeats,
        ).chunks_per_s
    result = {
        "source": "ftp (pyftpdlib on loopback)",
        "documents": len(docs),
        "distinct_originals": len(pdfs),
        "bytes": size,
        "failed": [d.source_uri for d in docs if d.status == DocumentStatus.FAILED],
        "pages": sum(d.page_count or 0 for d in docs),
        "chunks": chunks,
        "seconds": round(elapsed, 1),
        "documents_per_s": round(len(docs) / elapsed, 2),
        "chunks_per_s": round(chunks / elapsed, 1),
        "batch32_p50_s": round(pct(batches, 50), 3) if batches else None,
        "batch32_p95_s": round(pct(batches, 95), 3) if batches else None,
        "peak_rss_mib": peaks,
        "endpoint_stats": passes,
        "texts_per_pass_mean": round(passes["texts"] / max(passes["batches"], 1), 1),
        "bare_model_runtime": runtime,
        "bare_model_precision": precision,
        "bare_model_texts": len(sample),
        "bare_model_repeats": args.bare_repeats,
        "bare_model_chunks_per_s": round(bare, 1),
        "pipeline_to_model_ratio": round(chunks / elapsed / bare, 3),
        "load_average_before_sync_during_sync_after_bare": [
            load_before,
            load_after,
            f"{load()} ({time.perf_counter() - began:.0f} s of bare model)",
        ],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
