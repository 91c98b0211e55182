"""Answers offline: dump each question's passages once, then run the generator on the dump.

    python bench/answer_passages.py dump --data-dir DIR [--questions FILE ...] --out FILE.json
    python bench/answer_passages.py score FILE.json [--verbose]

``dump`` ingests the corpus's LibreOffice PDFs (or reuses ``--data-dir``), and stores for every
question the passages ``/v1/query`` would hand the generator (hybrid, top 5) and the retrieval
confidence it would gate on. ``score`` runs the default extractive generator on them, as
``/v1/query`` would (the same ``abstain_below`` gate), and prints the measures of
``bench/answer_eval.py`` (evidence in the answer text, blending, abstention) per question set and
half, plus the answers' length: a generator change is measured in seconds, not an ingestion.
The figures agree with ``make eval``'s on the same index; ``make eval`` stays the one of record.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import CORPUS, ingest, questions, running_stack
from bench.retrieval_eval import corpus_loose

HERE = Path(__file__).resolve().parent
EXTRA = [HERE / "unanswerable-extra.jsonl", HERE / "answerable-extra.jsonl"]
TENANT = "eval"


def dump(args: argparse.Namespace) -> None:
    sets = {path.stem: questions(path) for path in args.questions}
    with running_stack(args.data_dir) as stack:
        from datatorag import wiring
        from datatorag.usecases.search import Searcher

        settings = stack.settings
        ingest(settings, args.corpus / "pdf" / "libreoffice", TENANT)
        searcher = Searcher(wiring.search_index(settings), wiring.embeddings(settings))
        out: dict[str, Any] = {"abstain_below": settings.abstain_below, "sets": {}}
        for name, qs in sets.items():
            rows = []
            for q in qs:
                hits, retrieval = searcher.hybrid(TENANT, str(q["question"]), 5)
                rows.append({**q, "retrieval": retrieval, "hits": [h.model_dump() for h in hits]})
            out["sets"][name] = rows
    args.out.write_text(json.dumps(out))


def score(args: argparse.Namespace) -> None:
    from bench.answer_eval import _judge, _summary

    data = json.loads(args.dump.read_text())
    loose = corpus_loose(args.corpus)
    for name, rows in data["sets"].items():
        judged, lengths = [], []
        for q in rows:
            answer = _answer(q, data["abstain_below"])
            row = _judge(q, answer, loose)
            judged.append(row)
            if not answer["abstained"]:
                lengths.append(len(answer["answer"]))
            if args.verbose:
                mark = "ABS" if answer["abstained"] else "OK " if row["evidence"] else "-- "
                print(f"{mark} {q['id']} {q['question']}\n    {answer['answer']}")
        for half, part in (
            ("all", judged),
            ("even", [r for r in judged if r["number"] % 2 == 0]),
            ("odd", [r for r in judged if r["number"] % 2 == 1]),
        ):
            print(name, half, json.dumps(_summary(part)))
        if lengths:
            print(f"{name} answer length (chars): median {statistics.median(lengths):.0f}")


def _answer(q: dict[str, Any], abstain_below: float) -> dict[str, Any]:
    """What ``/v1/query`` would answer: the same retrieval gate, generator and composition."""
    from datatorag.adapters.generators.extractive import ExtractiveGenerator
    from datatorag.domain.models import SearchHit
    from datatorag.usecases.answers import abstention, compose

    hits = [SearchHit(**h) for h in q["hits"]]
    if not hits or q["retrieval"] < abstain_below:
        return abstention(hits).model_dump()
    generated = ExtractiveGenerator().generate(str(q["question"]), hits)
    confidence = generated.confidence or 0.0
    if generated.abstained:
        return abstention(hits, confidence).model_dump()
    return compose(generated.sentences, hits, confidence).model_dump()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    commands = parser.add_subparsers(dest="command", required=True)
    d = commands.add_parser("dump")
    d.add_argument("--data-dir", type=Path)
    d.add_argument(
        "--questions", type=Path, nargs="+", default=[CORPUS / "questions-dev.jsonl", *EXTRA]
    )
    d.add_argument("--out", type=Path, required=True)
    s = commands.add_parser("score")
    s.add_argument("dump", type=Path)
    s.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    dump(args) if args.command == "dump" else score(args)


if __name__ == "__main__":
    main()
