"""Extraction accuracy on the shared corpus: extracted text of every PDF against its ground truth.

    python bench/extraction_accuracy.py [--corpus ../shared/corpus] [--json out.json] [--worst 5]

Both texts are normalised the way the corpus README suggests (lower case, list markers and
punctuation removed, whitespace collapsed); the scores are the character-level similarity
``1 - normalised edit distance`` and bag-of-words recall/precision. That folds whitespace, so
paragraph boundaries are scored apart: "blocks matched" (truth paragraphs that come out as one
block, word for word), "false breaks" (block starts that fall inside a truth paragraph, per 100
blocks: a paragraph cut where a line merely wraps, or a running header between two clauses) and
"missed breaks" (truth paragraphs run into the one before, per 100 paragraphs). Besides the
corpus, the Word-exported policies of ``tests/fixtures/word_pdfs/`` (running header, "Version
1.0 Page N of M" footer, numbered clauses) are scored as their own group. Results are grouped
by producer and by layout (manifest.json) and printed as a Markdown table with pages per second.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for sub in ("core", "services/processor"):
    sys.path.insert(0, str(REPO / sub))

from datatorag_processor.extract import extract, plain_text  # noqa: E402

TARGET = 0.97
_MARKER = re.compile(
    r"^\s*(?:[•◦▪▫‣\u2043∙●○■□➢►▸✓✔\-*+\u2013\u2014·]|\(?(?:\d{1,3}|[a-zA-Z])[.)])\s+", re.M
)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _MARKER.sub(" ", text)
    text = re.sub(r"[^\w\s]|_", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def similarity(a: str, b: str) -> float:
    try:
        from rapidfuzz.distance import Levenshtein
    except ImportError:  # difflib is far slower on long texts but needs nothing installed
        import difflib

        return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    return float(Levenshtein.normalized_similarity(a, b))


def bag_scores(extracted: str, truth: str) -> tuple[float, float]:
    got, want = Counter(extracted.split()), Counter(truth.split())
    common = sum((got & want).values())
    return common / max(1, sum(want.values())), common / max(1, sum(got.values()))


def _ws(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _blocks(texts: Any) -> set[str]:
    return {n for n in (normalise(t) for t in texts) if n}


def boundaries(blocks: list[str], paragraphs: list[str]) -> tuple[int, int]:
    """Paragraph breaks that disagree: (false, missed). Both texts become word streams marked
    where a block starts; the streams are aligned word for word (difflib), and a break in one
    whose aligned word starts no block in the other counts against it."""
    import difflib

    def stream(texts: list[str]) -> tuple[list[str], set[int]]:
        words: list[str] = []
        starts: set[int] = set()
        for text in texts:
            starts.add(len(words))
            words += text.split()
        return words, starts

    truth, truth_starts = stream(paragraphs)
    got, got_starts = stream(blocks)
    to_truth: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, truth, got, autojunk=False)
    for block in matcher.get_matching_blocks():
        to_truth.update({block.b + k: block.a + k for k in range(block.size)})
    to_got = {t: g for g, t in to_truth.items()}
    false = sum(1 for g in got_starts if g in to_truth and to_truth[g] not in truth_starts)
    missed = sum(1 for t in truth_starts if t in to_got and to_got[t] not in got_starts)
    return false, missed


def score_pdf(corpus: Path, entry: dict[str, Any]) -> dict[str, Any]:
    data = (corpus / entry["pdf"]).read_bytes()
    started, cpu_started = time.perf_counter(), time.process_time()
    doc = extract(data, entry["pdf"], max_bytes=1 << 30, max_pages=10_000)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    extracted = normalise(plain_text(doc))
    truth_text = (corpus / entry["truth"]).read_text(encoding="utf-8")
    truth = normalise(truth_text)
    recall, precision = bag_scores(extracted, truth)
    truth_blocks = _blocks(truth_text.split("\n\n"))
    got_blocks = _blocks(block.text for block in doc.blocks)
    ordered = [n for n in (normalise(b.text) for b in doc.blocks) if n]
    paragraphs = [n for n in (normalise(t) for t in truth_text.split("\n\n")) if n]
    # Table rows are blocks with TAB-joined cells in the truth: how many come out cell for cell.
    truth_rows = [_ws(b) for b in truth_text.split("\n\n") if "\t" in b]
    got_rows = {_ws(b.text) for b in doc.blocks if b.kind == "table_row"}
    return {
        "pdf": entry["pdf"],
        "producer": entry["producer"],
        "layout": entry["layout"],
        "pages": doc.page_count or 0,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "similarity": similarity(extracted, truth),
        "recall": recall,
        "precision": precision,
        "block_match": len(truth_blocks & got_blocks) / max(1, len(truth_blocks)),
        "blocks": len(ordered),
        "paragraphs": len(paragraphs),
        **dict(
            zip(("false_breaks", "missed_breaks"), boundaries(ordered, paragraphs), strict=True)
        ),
        "table_rows": len(truth_rows),
        "table_rows_exact": sum(1 for row in truth_rows if row in got_rows),
    }


def summarise(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    pages = sum(r["pages"] for r in rows)
    seconds = sum(r["seconds"] for r in rows)
    return {
        "group": name,
        "pdfs": len(rows),
        "pages": pages,
        "similarity_mean": statistics.fmean(r["similarity"] for r in rows),
        "similarity_min": min(r["similarity"] for r in rows),
        "recall_mean": statistics.fmean(r["recall"] for r in rows),
        "precision_mean": statistics.fmean(r["precision"] for r in rows),
        "block_match_mean": statistics.fmean(r["block_match"] for r in rows),
        "false_breaks_per_100": 100
        * sum(r["false_breaks"] for r in rows)
        / max(1, sum(r["blocks"] for r in rows)),
        "missed_breaks_per_100": 100
        * sum(r["missed_breaks"] for r in rows)
        / max(1, sum(r["paragraphs"] for r in rows)),
        "table_rows_exact": sum(r["table_rows_exact"] for r in rows)
        / max(1, sum(r["table_rows"] for r in rows)),
        "pages_per_second": pages / seconds if seconds else 0.0,
        "ms_per_page": 1000 * seconds / pages if pages else 0.0,
        # CPU time is steadier than wall time on a machine shared with other work
        "cpu_ms_per_page": 1000 * sum(r["cpu_seconds"] for r in rows) / pages if pages else 0.0,
    }


def markdown(groups: list[dict[str, Any]]) -> str:
    head = (
        "| group | PDFs | pages | similarity (mean) | similarity (min) | word recall | "
        "word precision | blocks matched | false breaks /100 blocks | missed breaks /100 "
        "paragraphs | table rows exact | pages/s | "
        "ms/page | CPU ms/page |\n"
        "| --- |" + " ---: |" * 13
    )
    lines = [head]
    for g in groups:
        lines.append(
            f"| {g['group']} | {g['pdfs']} | {g['pages']} | {g['similarity_mean']:.4f} | "
            f"{g['similarity_min']:.4f} | {g['recall_mean']:.4f} | {g['precision_mean']:.4f} | "
            f"{g['block_match_mean']:.3f} | {g['false_breaks_per_100']:.1f} | "
            f"{g['missed_breaks_per_100']:.1f} | "
            f"{g['table_rows_exact']:.3f} | "
            f"{g['pages_per_second']:.0f} | {g['ms_per_page']:.1f} | {g['cpu_ms_per_page']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--json", type=Path, help="write per-PDF and summary figures here")
    parser.add_argument("--worst", type=int, default=5, help="list this many lowest-scoring PDFs")
    parser.add_argument("--only", default="", help="score only PDFs whose path contains this")
    args = parser.parse_args(argv)

    manifest = json.loads((args.corpus / "manifest.json").read_text(encoding="utf-8"))
    entries = [p for d in manifest["documents"] for p in d["pdfs"] if args.only in p["pdf"]]
    word = REPO / "tests" / "fixtures" / "word_pdfs"
    entries += [
        {
            "pdf": str(pdf),
            "truth": str(pdf.with_suffix(".txt")),
            "producer": "word (DOCX via LibreOffice)",
            "layout": "word-policy",
        }
        for pdf in sorted(word.glob("*.pdf"))
        if args.only in str(pdf)
    ]
    rows = [score_pdf(args.corpus, entry) for entry in entries]

    groups = []
    for producer in sorted({r["producer"] for r in rows}):
        groups.append(summarise(producer, [r for r in rows if r["producer"] == producer]))
    for layout in sorted({r["layout"] for r in rows}):
        groups.append(summarise(f"layout: {layout}", [r for r in rows if r["layout"] == layout]))
    groups.append(summarise("all", rows))
    print(markdown(groups))
    worst = sorted(rows, key=lambda r: r["similarity"])[: args.worst]
    if worst:
        print("\nLowest similarity:")
        for r in worst:
            print(
                f"- {r['pdf']}: {r['similarity']:.4f} (recall {r['recall']:.3f}, "
                f"precision {r['precision']:.3f})"
            )
    producers = [g for g in groups if not g["group"].startswith(("layout", "all"))]
    met = all(g["similarity_mean"] >= TARGET for g in producers)
    print(
        f"\nTarget: mean similarity >= {TARGET} for every producer: {'met' if met else 'NOT met'}"
    )
    if args.json:
        args.json.write_text(json.dumps({"groups": groups, "pdfs": rows}, indent=1) + "\n")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
