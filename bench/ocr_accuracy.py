"""OCR accuracy and cost on the shared corpus: every PDF scanned to images, read back by OCR.

    python bench/ocr_accuracy.py [--dpi 300] [--scan-dpi 200] [--every 1] [--jobs 1]
        [--producer NAME] [--json out.json] [--rows out.jsonl] [--write-scans DIR] [--robustness]

Each corpus PDF is rendered at ``--scan-dpi`` and wrapped as an image-only PDF (a scan; see
tests/fixtures/scans.py), then extracted with OCR (Tesseract; pages rendered at ``--dpi``) and
scored against the ground truth with the same normalisation and similarity as
bench/extraction_accuracy.py. CPU time counts the processor and its Tesseract processes.
``--write-scans DIR`` also writes the scanned LibreOffice PDFs as a corpus for
``bench/retrieval_eval.py --corpus DIR`` (questions and scorer linked from the real corpus).
``--robustness`` scores one page per PDF skewed by 3 degrees, at 30% contrast and at 150 dpi.
``--rows`` appends each PDF's figures to a JSON-lines file as soon as it is read, so a long run
that is stopped keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
for sub in ("core", "services/processor"):
    sys.path.insert(0, str(REPO / sub))

from bench.extraction_accuracy import TARGET, bag_scores, markdown, normalise, similarity  # noqa: E402
from datatorag.adapters.ocr.tesseract import TesseractOcr  # noqa: E402
from datatorag_processor.extract import extract, plain_text  # noqa: E402
from datatorag_processor.extract.pdf_ocr import OcrOptions  # noqa: E402
from tests.fixtures.scans import scan_pdf  # noqa: E402

ROBUSTNESS = {
    "skewed 3 degrees": {"skew_degrees": 3.0},
    "30% contrast": {"contrast": 0.3},
    "150 dpi scan": {"dpi": 150},
}


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def score_pdf(job: tuple[Path, dict[str, Any], int, int, dict[str, float]]) -> dict[str, Any]:
    corpus, entry, dpi, scan_dpi, scan = job
    source = (corpus / entry["pdf"]).read_bytes()
    scanned = scan_pdf(source, None, **{"dpi": scan_dpi, **scan})
    ocr = OcrOptions(TesseractOcr(), dpi=dpi, max_pages=10_000, timeout_s=3600)
    started, cpu_started = time.perf_counter(), _cpu()
    doc = extract(scanned, entry["pdf"], max_bytes=1 << 30, max_pages=10_000, ocr=ocr)
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu_started
    extracted = normalise(plain_text(doc))
    truth = normalise((corpus / entry["truth"]).read_text(encoding="utf-8"))
    recall, precision = bag_scores(extracted, truth)
    return {
        "pdf": entry["pdf"],
        "producer": entry["producer"],
        "layout": entry["layout"],
        "pages": doc.page_count or 0,
        "ocr_pages": len(doc.ocr_pages),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "similarity": similarity(extracted, truth),
        "recall": recall,
        "precision": precision,
        "block_match": 0.0,
        "table_rows": 0,
        "table_rows_exact": 0,
    }


def summarise(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    pages = sum(r["pages"] for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    cpu = sum(r["cpu_seconds"] for r in rows)
    return {
        "group": name,
        "pdfs": len(rows),
        "pages": pages,
        "similarity_mean": statistics.fmean(r["similarity"] for r in rows),
        "similarity_min": min(r["similarity"] for r in rows),
        "recall_mean": statistics.fmean(r["recall"] for r in rows),
        "precision_mean": statistics.fmean(r["precision"] for r in rows),
        "block_match_mean": 0.0,  # block and break scores need the text layer's blocks
        "false_breaks_per_100": 0.0,
        "missed_breaks_per_100": 0.0,
        "table_rows_exact": 0.0,
        "pages_per_second": pages / seconds if seconds else 0.0,
        "ms_per_page": 1000 * seconds / pages if pages else 0.0,
        "cpu_ms_per_page": 1000 * cpu / pages if pages else 0.0,
    }


def write_scans(entries: list[dict[str, Any]], corpus: Path, out: Path, scan_dpi: int) -> None:
    """Scans of the LibreOffice PDFs (the ones retrieval_eval ingests) as a corpus in ``out``."""
    for entry in entries:
        if entry["producer"] == "libreoffice":
            path = out / entry["pdf"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(scan_pdf((corpus / entry["pdf"]).read_bytes(), dpi=scan_dpi))
    for name in ("questions-dev.jsonl", "build", "manifest.json"):
        link = out / name
        if not link.exists():
            link.symlink_to((corpus / name).resolve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--dpi", type=int, default=300, help="OCR resolution (DATATORAG_OCR_DPI)")
    parser.add_argument("--scan-dpi", type=int, default=200, help="resolution of the scans")
    parser.add_argument("--every", type=int, default=1, help="score every n-th PDF (a sample)")
    parser.add_argument("--jobs", type=int, default=1, help="PDFs read at once")
    parser.add_argument("--producer", help="only the PDFs of this producer (e.g. chromium)")
    parser.add_argument("--rows", type=Path, help="append each PDF's figures here (JSON lines)")
    parser.add_argument("--json", type=Path, help="write per-PDF and summary figures here")
    parser.add_argument("--write-scans", type=Path, help="write a scanned corpus here")
    parser.add_argument("--robustness", action="store_true", help="also poor scans, 1 page each")
    args = parser.parse_args(argv)

    manifest = json.loads((args.corpus / "manifest.json").read_text(encoding="utf-8"))
    entries = [p for d in manifest["documents"] for p in d["pdfs"]]
    if args.write_scans:
        write_scans(entries, args.corpus, args.write_scans, args.scan_dpi)
    entries = [e for e in entries if args.producer in (None, e["producer"])][:: args.every]
    jobs = [(args.corpus, e, args.dpi, args.scan_dpi, {}) for e in entries]
    rows = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(score_pdf, jobs):
            rows.append(row)
            if args.rows:
                with args.rows.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(row) + "\n")
    groups = [
        summarise(p, [r for r in rows if r["producer"] == p])
        for p in sorted({r["producer"] for r in rows})
    ]
    groups.append(summarise("all", rows))
    print(f"OCR at {args.dpi} dpi of scans at {args.scan_dpi} dpi\n")
    print(markdown(groups))
    worst = sorted(rows, key=lambda r: r["similarity"])[:5]
    print("\nLowest similarity:")
    for r in worst:
        print(f"- {r['pdf']}: {r['similarity']:.4f} (recall {r['recall']:.3f})")
    met = all(g["similarity_mean"] >= TARGET for g in groups)
    print(
        f"\nTarget: mean similarity >= {TARGET} for every producer: {'met' if met else 'NOT met'}"
    )
    results: dict[str, Any] = {"dpi": args.dpi, "scan_dpi": args.scan_dpi, "groups": groups}
    if args.robustness:
        results["robustness"] = robustness(args, entries)
    if args.json:
        results["pdfs"] = rows
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0 if met else 1


def robustness(args: argparse.Namespace, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Poor scans of the first page of every 4th sampled PDF, against the same page scanned well."""
    sample = entries[::4]
    scans = {"clean": {}, **ROBUSTNESS}
    jobs = [(args, entry, scan) for scan in scans.values() for entry in sample]
    with ProcessPoolExecutor(args.jobs) as pool:
        scores = list(pool.map(_score_page, jobs))
    out = []
    for k, name in enumerate(scans):
        found = scores[k * len(sample) : (k + 1) * len(sample)]
        out.append(
            {
                "scan": name,
                "pages": len(found),
                "similarity_mean": statistics.fmean(found),
                "similarity_min": min(found),
            }
        )
        print(
            f"- {name}: {len(found)} pages, similarity mean {out[-1]['similarity_mean']:.4f}, "
            f"min {out[-1]['similarity_min']:.4f}"
        )
    return out


def _score_page(job: tuple[argparse.Namespace, dict[str, Any], dict[str, float]]) -> float:
    """The first page of a PDF scanned as ``scan`` says, read by OCR, against its text layer."""
    args, entry, scan = job
    source = (args.corpus / entry["pdf"]).read_bytes()
    truth = extract(source, "t.pdf", max_bytes=1 << 30, max_pages=10_000)
    page_one = normalise(" ".join(b.text for b in truth.blocks if b.page == 1))
    doc = extract(
        scan_pdf(source, [0], **{"dpi": args.scan_dpi, **scan}),
        "s.pdf",
        max_bytes=1 << 30,
        max_pages=10,
        ocr=OcrOptions(TesseractOcr(), dpi=args.dpi),
    )
    return similarity(normalise(plain_text(doc)), page_one)


if __name__ == "__main__":
    raise SystemExit(main())
