"""Which precision and runtime changes make another embedding space (datatorag.domain.spaces).

    python bench/vector_spaces.py [--corpus ../shared/corpus] [--passages 300] [--json out.json]

Loads the endpoint's model four ways: torch fp32 (the reference), torch with bf16 autocast, ONNX
Runtime fp32, and, for contrast, ONNX Runtime with dynamically quantised int8 weights. Embeds the
dev questions and a fixed sample of the corpus's paragraphs (the Markdown handbooks, paragraphs
of 200+ characters, with their document title as context). For each variant it reports the
cosine of its vectors to the reference's, and what matters for an index that was not re-embedded:
questions embedded by the variant, ranked against passages embedded by the reference, compared
with the reference's own ranking (top-1 agreement, mean overlap of the top 5 and top 10).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.int8_eval import int8_model
from datatorag.settings import Settings, bundled_model_dir

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def paragraphs(corpus: Path, count: int, seed: int = 15) -> list[str]:
    found = []
    for path in sorted((corpus / "docs").rglob("*.md")):
        title = path.stem.replace("-", " ")
        for block in path.read_text().split("\n\n"):
            text = " ".join(block.split())
            if len(text) >= 200:
                found.append(f"{title}: {text}")
    random.Random(seed).shuffle(found)
    return found[:count]


def agreement(reference: np.ndarray, variant: np.ndarray, passages: np.ndarray) -> dict[str, Any]:
    """How the variant's questions rank the reference's passages, against the reference's."""
    ref_rank = np.argsort(-(reference @ passages.T), axis=1)
    var_rank = np.argsort(-(variant @ passages.T), axis=1)
    overlap = {
        k: float(
            np.mean(
                [len(set(a[:k]) & set(b[:k])) / k for a, b in zip(ref_rank, var_rank, strict=True)]
            )
        )
        for k in (5, 10)
    }
    return {
        "top1_agreement": float(np.mean(ref_rank[:, 0] == var_rank[:, 0])),
        "top5_overlap": overlap[5],
        "top10_overlap": overlap[10],
    }


def cosines(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    values = np.sum(a * b, axis=1)
    return {"mean": float(values.mean()), "min": float(values.min())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--passages", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from datatorag_embedding_endpoint.cpu import cpu_name, cpu_supports_bf16
    from datatorag_embedding_endpoint.model import load_model

    questions = [
        json.loads(line)["question"]
        for line in (args.corpus / "questions-dev.jsonl").read_text().splitlines()
        if line.strip()
    ]
    passages = paragraphs(args.corpus, args.passages)
    model_dir = str(bundled_model_dir())
    with tempfile.TemporaryDirectory() as cache:
        variants = {
            "torch fp32": load_model(model_dir, precision="fp32", runtime="torch"),
            "torch bf16 autocast": load_model(model_dir, precision="bf16", runtime="torch"),
            "onnx fp32": load_model(model_dir, runtime="onnx", cache_dir=cache),
            # For contrast: dynamic int8 quantisation (bench/int8_eval.py), another space.
            "onnx int8 (dynamic, per tensor)": int8_model(
                Settings(_env_file=None, embedding_model=model_dir), False, Path(cache)
            ),
        }
        embedded = {}
        for name, model in variants.items():
            started = time.perf_counter()
            embedded[name] = (model.embed(questions), model.embed(passages))
            print(f"{name}: embedded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        spaces = {name: model.space for name, model in variants.items()}
    ref_q, ref_p = embedded["torch fp32"]
    report: dict[str, Any] = {
        "cpu": cpu_name(),
        "native_bf16": cpu_supports_bf16(),
        "questions": len(questions),
        "passages": len(passages),
        "variants": {},
    }
    for name, (q, p) in embedded.items():
        if name == "torch fp32":
            continue
        report["variants"][name] = {
            "space": spaces[name],
            "same_space_name": spaces[name] == spaces["torch fp32"],
            "cosine_questions": cosines(ref_q, q),
            "cosine_passages": cosines(ref_p, p),
            "ranking_vs_fp32_index": agreement(ref_q, q, ref_p),
        }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
