"""Retrieval evaluation on the corpus's dev questions (`make eval`).

    python bench/retrieval_eval.py [--corpus ../shared/corpus] [--questions FILE] [--out docs/]
        [--generator extractive|openai|bedrock] [--openai-base-url URL --openai-model NAME]
        [--bedrock-model-id ID] [--extra-questions FILE ...]

Ingests the corpus's LibreOffice PDFs (one per document) through the running stack, then scores
every search mode plus two baselines computed on the same chunks: plain BM25 (bm25s, chunk text
only) and plain vector search (chunk text embedded without its contextual header). Metrics follow
the corpus's `build/score.py`: hit@k and MRR@10 by document id, evidence@5 (loose match).
Then the answers, through the running API (`bench/answer_eval.py`): evidence in the answer text,
answers blending documents, abstention, and `/v1/query` p95 against `/v1/search`, for the
generator chosen (the extractive one by default; `--generator openai` measures any
OpenAI-compatible endpoint, with `DATATORAG_OPENAI_API_KEY` from the environment, and
`--generator bedrock` Amazon Bedrock with the usual AWS credentials), on the dev set and on our
own questions nobody tuned on (`--extra-questions`: `bench/unanswerable-extra.jsonl`, near misses
over the corpus's three organisations, and `bench/answerable-extra.jsonl`). Writes Markdown
tables and a PNG chart.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import answer_eval
from bench.harness import CORPUS, REPO, ingest, manifest_id, questions, running_stack

Retriever = Callable[[str], list[tuple[str, str]]]  # question -> [(manifest doc id, chunk text)]
TOP = 10


def corpus_loose(corpus: Path) -> Callable[[str], str]:
    """The corpus's own loose normalisation, so evidence@k means what its README says."""
    spec = importlib.util.spec_from_file_location("corpus_score", corpus / "build" / "score.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.loose  # type: ignore[no-any-return]


def score(qs: list[dict[str, Any]], retrieve: Retriever, loose: Callable[[str], str]) -> dict:
    answerable = [q for q in qs if q["doc_ids"]]
    hits = {1: 0, 3: 0, 5: 0, 10: 0}
    mrr = evidence5 = 0.0
    for q in answerable:
        results = retrieve(str(q["question"]))[:TOP]
        ranks = [i for i, (doc, _) in enumerate(results, 1) if doc in q["doc_ids"]]
        for k in hits:
            hits[k] += bool(ranks and ranks[0] <= k)
        mrr += 1 / ranks[0] if ranks else 0
        needle = loose(str(q["evidence"]))
        evidence5 += any(needle in loose(text) for _, text in results[:5])
    n = len(answerable)
    return {
        **{f"hit@{k}": round(v / n, 3) for k, v in hits.items()},
        "mrr@10": round(mrr / n, 3),
        "evidence@5": round(evidence5 / n, 3),
    }


def chunk_table(index_db: Path) -> tuple[list[str], list[str], list[str]]:
    rows = sqlite3.connect(index_db).execute(
        "SELECT d.source_uri, t.text FROM chunks c JOIN chunk_texts t ON t.id = c.id "
        "JOIN documents d USING (doc_id) ORDER BY c.chunk_id"
    )
    uris, texts = zip(*rows, strict=True)
    return [manifest_id(u) for u in uris], list(texts), list(uris)


def bm25_baseline(doc_ids: list[str], texts: list[str]) -> Retriever:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)

    def retrieve(question: str) -> list[tuple[str, str]]:
        ids, _ = retriever.retrieve(
            bm25s.tokenize([question], stopwords="en", show_progress=False),
            k=TOP,
            show_progress=False,
        )
        return [(doc_ids[i], texts[i]) for i in ids[0]]

    return retrieve


def vector_baseline(doc_ids: list[str], texts: list[str], embed: Callable) -> Retriever:
    matrix = np.concatenate([embed(texts[i : i + 64]) for i in range(0, len(texts), 64)])

    def retrieve(question: str) -> list[tuple[str, str]]:
        scores = matrix @ embed([question])[0]
        return [(doc_ids[i], texts[i]) for i in np.argsort(-scores)[:TOP]]

    return retrieve


def abstention_curve(qs: list[dict[str, Any]], confidence: Callable[[str], float]) -> list[dict]:
    """Share of answerable / unanswerable questions abstained at each threshold of the retrieval
    confidence (the best cosine between question and passage)."""
    scored = [(confidence(str(q["question"])), bool(q["doc_ids"])) for q in qs]
    answerable = [c for c, a in scored if a]
    unanswerable = [c for c, a in scored if not a]
    curve = []
    for step in range(20, 66):
        threshold = step / 100
        curve.append(
            {
                "threshold": threshold,
                "answerable_abstained": round(
                    sum(c < threshold for c in answerable) / len(answerable), 3
                ),
                "unanswerable_abstained": round(
                    sum(c < threshold for c in unanswerable) / max(1, len(unanswerable)), 3
                ),
            }
        )
    return curve


def calibrate(curve: list[dict], max_answerable: float = 0.05) -> dict:
    """The threshold that abstains on most unanswerable questions while abstaining on at most
    ``max_answerable`` of the answerable ones (the lowest such threshold on ties)."""
    allowed = [c for c in curve if c["answerable_abstained"] <= max_answerable]
    return max(allowed, key=lambda c: (c["unanswerable_abstained"], -c["threshold"]))


def markdown(results: dict[str, dict[str, float]]) -> str:
    cols = ["hit@1", "hit@3", "hit@5", "hit@10", "mrr@10", "evidence@5"]
    lines = ["| system | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    lines += [
        f"| {name} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |"
        for name, r in results.items()
    ]
    return "\n".join(lines)


def chart(results: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ["hit@1", "hit@5", "mrr@10", "evidence@5"]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(results)
    for i, (name, r) in enumerate(results.items()):
        ax.bar(
            [m + i * width for m in range(len(metrics))], [r[m] for m in metrics], width, label=name
        )
    ax.set_xticks([m + 0.4 - width / 2 for m in range(len(metrics))], metrics)
    ax.set_ylim(0, 1)
    ax.set_title("Retrieval on questions-dev.jsonl (answerable questions)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(results))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--questions", type=Path)
    parser.add_argument(
        "--extra-questions",
        type=Path,
        nargs="*",
        default=[
            REPO / "bench" / "unanswerable-extra.jsonl",
            REPO / "bench" / "answerable-extra.jsonl",
        ],
        help="answers only: our own near-miss unanswerable and held-out answerable questions",
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--data-dir", type=Path, help="reuse an ingested data directory")
    parser.add_argument("--generator", choices=["extractive", "openai", "bedrock"])
    parser.add_argument("--openai-base-url")
    parser.add_argument("--openai-model")
    parser.add_argument("--bedrock-model-id")
    args = parser.parse_args()
    qs = questions(args.questions or args.corpus / "questions-dev.jsonl")
    loose = corpus_loose(args.corpus)
    env = {
        f"DATATORAG_{name.upper()}": value
        for name, value in (
            ("generator_backend", args.generator),
            ("openai_base_url", args.openai_base_url),
            ("openai_model", args.openai_model),
            ("bedrock_model_id", args.bedrock_model_id),
        )
        if value
    }
    with running_stack(args.data_dir, **env) as stack:
        from datatorag import wiring
        from datatorag.usecases.search import Searcher

        settings = stack.settings
        docs, seconds = ingest(settings, args.corpus / "pdf" / "libreoffice", "eval")
        print(f"ingested {len(docs)} documents in {seconds:.0f} s", file=sys.stderr)
        embeddings = wiring.embeddings(settings)
        searcher = Searcher(wiring.search_index(settings), embeddings)

        def mode(name: str) -> Retriever:
            return lambda q: [
                (manifest_id(h.source_uri), h.text) for h in searcher.search("eval", q, TOP, name)
            ]  # type: ignore[arg-type]

        doc_ids, texts, _ = chunk_table(settings.data_dir / "index" / "eval.db")
        results = {
            "baseline: BM25 (bm25s)": score(qs, bm25_baseline(doc_ids, texts), loose),
            "baseline: vector": score(qs, vector_baseline(doc_ids, texts, embeddings.embed), loose),
            "keyword": score(qs, mode("keyword"), loose),
            "vector": score(qs, mode("vector"), loose),
            "hybrid": score(qs, mode("hybrid"), loose),
        }
        from datatorag_query_api.bootstrap import build_answerer, key_store

        answerer = build_answerer(settings, searcher)
        curve = abstention_curve(qs, lambda q: answerer.confidence("eval", q))
        key = key_store(settings).create("eval")
        generator = settings.generator_backend
        answers = {generator: answer_eval.evaluate(settings.api_url, key, qs, loose)}
        if args.extra_questions:  # questions nobody tuned on: do the figures hold?
            extra = [q for path in args.extra_questions for q in questions(path)]
            answers[f"{generator}, own held-out"] = answer_eval.evaluate(
                settings.api_url, key, extra, loose
            )
    chosen = calibrate(curve)
    print(f"abstention: calibrated threshold {chosen}", file=sys.stderr)
    print(f"answers at abstain_below={settings.abstain_below}: {answers}", file=sys.stderr)
    table = markdown(results) + "\n\n" + answer_eval.markdown(answers)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "retrieval-eval.json").write_text(
        json.dumps(
            {
                "retrieval": results,
                "answers": answers,
                "abstention_curve": curve,
                "calibrated": chosen,
            },
            indent=2,
        )
    )
    (args.out / "retrieval-eval.md").write_text(table + "\n")
    chart(results, args.out / "retrieval-eval.png")


if __name__ == "__main__":
    main()
