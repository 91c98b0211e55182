"""Bare model throughput: chunks/s on realistic passages, fp32 against bf16 autocast.

Passages are 200-250 word pieces cut from the corpus's ground-truth texts (``../shared/corpus/
truth``), the size the chunker produces. Each precision embeds the same passages in batches of
``--batch-size`` (one forward pass each, after a warm-up batch); the table gives chunks/s, seconds
per batch (p50, p95) and the cosine agreement of each precision's vectors with fp32's. A second
table checks what sorting a mixed-length request by length (sentence-transformers does it inside
``encode``) buys over embedding it in arrival order.

    python bench/model_throughput.py [--batches 6] [--precisions fp32,bf16] [--json out.json]

``--runtimes torch,onnx`` measures the runtimes instead (torch fp32 against ONNX Runtime fp32):
process CPU ms per text (all threads counted) and texts/s, the median of ``--repeats`` passes run
alternately, for the dev questions at batch 1, 4 and 16 and for passages of exactly 254 word
pieces (a full chunk) at batch 32, each with ``--threads`` (default 1,2) threads, plus the
ONNX export and load times and the vectors' cosine agreement.

    python bench/model_throughput.py --runtimes torch,onnx [--threads 1,2] [--repeats 5]

The pipeline benchmark reuses ``fastest_chunks_per_second`` for "the bare model's chunks/s in its
fastest configuration".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TRUTH_DIR = REPO / ".." / "shared" / "corpus" / "truth"
QUESTIONS = REPO / ".." / "shared" / "corpus" / "questions-dev.jsonl"

try:
    from datatorag_embedding_endpoint.cpu import Precision, Runtime, cpu_name, cpu_supports_bf16
    from datatorag_embedding_endpoint.model import EmbeddingModel, load_model
except ImportError:  # run from a checkout without ``pip install -e``
    sys.path[:0] = [str(REPO / "core"), str(REPO / "services" / "embedding-endpoint")]
    from datatorag_embedding_endpoint.cpu import Precision, Runtime, cpu_name, cpu_supports_bf16
    from datatorag_embedding_endpoint.model import EmbeddingModel, load_model


@dataclass
class Throughput:
    precision: Precision
    chunks: int
    batch_size: int
    chunks_per_s: float
    batch_p50_s: float
    batch_p95_s: float
    cosine_vs_fp32_mean: float | None = None
    cosine_vs_fp32_min: float | None = None


def default_model_name() -> str:
    from datatorag.settings import Settings

    return Settings().embedding_model


def corpus_passages(
    model: EmbeddingModel,
    n: int,
    *,
    min_tokens: int = 200,
    max_tokens: int = 250,
    truth_dir: Path = TRUTH_DIR,
    seed: int = 7,
) -> list[str]:
    """``n`` passages of ``min_tokens``-``max_tokens`` word pieces, cut from the corpus texts."""
    files = sorted(truth_dir.rglob("*.txt"))
    if not files:
        raise SystemExit(f"no ground-truth texts under {truth_dir.resolve()}")
    rng = random.Random(seed)
    passages: list[str] = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        encoded = model.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        offsets = encoded["offset_mapping"]
        start = 0
        while len(passages) < n:
            size = rng.randint(min_tokens, max_tokens)
            if start + size > len(offsets):
                break
            passages.append(text[offsets[start][0] : offsets[start + size - 1][1]])
            start += size
        if len(passages) >= n:
            return passages
    raise SystemExit(f"the corpus holds only {len(passages)} passages of {min_tokens}+ word pieces")


def measure(
    model: EmbeddingModel, passages: Sequence[str], precision: Precision, batch_size: int
) -> tuple[Throughput, np.ndarray]:
    """Embed ``passages`` batch by batch in ``precision``; returns the figures and the vectors."""
    model.precision, model.batch_size = precision, batch_size
    model.embed(passages[:batch_size])  # warm-up: first-call allocations, oneDNN kernel choice
    times: list[float] = []
    vectors: list[np.ndarray] = []
    for start in range(0, len(passages), batch_size):
        batch = passages[start : start + batch_size]
        began = time.perf_counter()
        vectors.append(model.embed(batch))
        times.append(time.perf_counter() - began)
    result = Throughput(
        precision=precision,
        chunks=len(passages),
        batch_size=batch_size,
        chunks_per_s=len(passages) / sum(times),
        batch_p50_s=statistics.median(times),
        batch_p95_s=float(np.percentile(times, 95)),
    )
    return result, np.vstack(vectors)


def compare_precisions(
    model: EmbeddingModel,
    passages: Sequence[str],
    precisions: Sequence[Precision],
    batch_size: int,
) -> list[Throughput]:
    results: list[Throughput] = []
    reference: np.ndarray | None = None
    order: list[Precision] = ["fp32", *[p for p in precisions if p != "fp32"]]
    for precision in order:
        result, vectors = measure(model, passages, precision, batch_size)
        if reference is None:
            reference = vectors
        cosines = np.sum(reference * vectors, axis=1)  # both unit norm
        result.cosine_vs_fp32_mean = float(cosines.mean())
        result.cosine_vs_fp32_min = float(cosines.min())
        if precision in precisions:
            results.append(result)
    return results


def length_sorting(
    model: EmbeddingModel, precision: Precision, batch_size: int, n: int, seed: int = 11
) -> dict[str, float]:
    """chunks/s on a mixed-length request (20-250 word pieces): length-sorted, or arrival order."""
    rng = random.Random(seed)
    long = corpus_passages(model, n, min_tokens=200, max_tokens=250, seed=seed)
    mixed = [p[: rng.randint(len(p) // 12, len(p))] for p in long]
    model.precision, model.batch_size = precision, batch_size
    model.embed(mixed[:batch_size])
    began = time.perf_counter()
    model.embed(mixed)  # one call: sorted by length across the whole request
    sorted_s = time.perf_counter() - began
    began = time.perf_counter()
    for start in range(0, n, batch_size):  # one call per batch: arrival order
        model.embed(mixed[start : start + batch_size])
    arrival_s = time.perf_counter() - began
    return {
        "texts": n,
        "sorted_chunks_per_s": n / sorted_s,
        "arrival_order_chunks_per_s": n / arrival_s,
        "speedup": arrival_s / sorted_s,
    }


def fastest_chunks_per_second(
    model_name: str | None = None,
    *,
    batches: int = 4,
    batch_size: int = 32,
    precisions: Sequence[Precision] | None = None,
    passages: Sequence[str] | None = None,
    runtime: Runtime = "torch",
    cache_dir: Path | None = None,
    repeats: int = 1,
) -> Throughput:
    """The bare model's best chunks/s over ``precisions`` on 200-250 word-piece passages, or on
    ``passages`` (e.g. the very chunks the pipeline embedded, for a like-for-like ratio); each
    precision runs ``repeats`` times and the best run counts (on a shared machine the slow runs
    measure the neighbours, not the model).

    By default bf16 is tried only where the CPU runs it natively (AMX/AVX512-BF16); elsewhere it
    is emulated and several times slower than fp32, so measuring it would only cost time. The
    onnx runtime runs fp32 only (its export is cached in ``cache_dir``, default a temporary one).
    """
    candidates: Sequence[Precision] = precisions or (
        ["fp32", "bf16"] if cpu_supports_bf16() and runtime == "torch" else ["fp32"]
    )
    with tempfile.TemporaryDirectory(prefix="onnx-cache-") as scratch:
        model = load_model(
            model_name or default_model_name(),
            precision="fp32",
            batch_size=batch_size,
            runtime=runtime,
            cache_dir=cache_dir or scratch,
        )
    passages = list(passages) if passages else corpus_passages(model, batches * batch_size)
    results = [
        measure(model, passages, p, batch_size)[0] for p in candidates for _ in range(repeats)
    ]
    return max(results, key=lambda r: r.chunks_per_s)


@dataclass
class RuntimeCost:
    """One runtime on one workload: medians over passes that alternate between the runtimes."""

    runtime: Runtime
    threads: int
    workload: str  # "questions" or "chunks"
    batch_size: int
    texts: int
    tokens_mean: float
    cpu_ms_per_text: float  # process CPU time (every thread), median over the passes
    wall_ms_per_text: float
    texts_per_s: float  # from the median wall time
    passes: int


def dev_questions(path: Path = QUESTIONS) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def _one_pass(model: EmbeddingModel, texts: Sequence[str], batch_size: int) -> tuple[float, float]:
    """(CPU s, wall s) to embed ``texts`` in requests of ``batch_size``, as the endpoint would."""
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, len(texts), batch_size):
        model.embed(texts[start : start + batch_size])
    return time.process_time() - cpu, time.perf_counter() - wall


def compare_runtimes(
    models: dict[Runtime, EmbeddingModel],
    threads: int,
    workloads: dict[str, tuple[Sequence[str], Sequence[int]]],
    repeats: int,
) -> list[RuntimeCost]:
    """Each workload at each batch size, the runtimes taking turns pass by pass (so that noise
    from other jobs on the machine falls on all of them alike)."""
    results: list[RuntimeCost] = []
    for workload, (texts, batch_sizes) in workloads.items():
        tokens = statistics.mean(
            models["torch" if "torch" in models else "onnx"].token_count(t) for t in texts
        )
        for batch_size in batch_sizes:
            for model in models.values():
                model.batch_size = batch_size
                model.embed(texts[:batch_size])  # warm-up: allocations, kernel choice
            samples: dict[Runtime, list[tuple[float, float]]] = {r: [] for r in models}
            for _ in range(repeats):
                for runtime, model in models.items():
                    samples[runtime].append(_one_pass(model, texts, batch_size))
            for runtime, passes in samples.items():
                cpu = statistics.median(c for c, _ in passes)
                wall = statistics.median(w for _, w in passes)
                results.append(
                    RuntimeCost(
                        runtime=runtime,
                        threads=threads,
                        workload=workload,
                        batch_size=batch_size,
                        texts=len(texts),
                        tokens_mean=tokens,
                        cpu_ms_per_text=1000 * cpu / len(texts),
                        wall_ms_per_text=1000 * wall / len(texts),
                        texts_per_s=len(texts) / wall,
                        passes=repeats,
                    )
                )
    return results


def runtime_report(
    model_name: str,
    runtimes: Sequence[Runtime],
    thread_counts: Sequence[int],
    repeats: int,
    chunks: int,
    cache_dir: Path,
    torch_precision: Precision = "fp32",
    question_batches: Sequence[int] = (1, 4, 16),
    chunk_batches: Sequence[int] = (32,),
) -> dict[str, Any]:
    """Export and load times, cosine agreement and the cost table for ``runtimes``; torch runs
    in ``torch_precision`` (bf16: autocast, as the endpoint's ``auto`` does on AMX CPUs)."""
    import torch

    report: dict[str, Any] = {
        "model": model_name,
        "runtimes": list(runtimes),
        "torch_precision": torch_precision,
        "loads": {},
    }
    began = time.perf_counter()
    reference = load_model(model_name, precision=torch_precision, runtime="torch")
    report["loads"]["torch_s"] = time.perf_counter() - began
    questions = dev_questions()
    passages = corpus_passages(reference, chunks, min_tokens=254, max_tokens=254)
    workloads: dict[str, tuple[Sequence[str], Sequence[int]]] = {
        "questions": (questions, tuple(question_batches)),
        "chunks": (passages, tuple(chunk_batches)),
    }
    results: list[RuntimeCost] = []
    for threads in thread_counts:
        torch.set_num_threads(threads)  # the onnx session created below follows it
        models: dict[Runtime, EmbeddingModel] = {}
        for runtime in runtimes:
            if runtime == "torch":
                models[runtime] = reference
                continue
            began = time.perf_counter()
            models[runtime] = load_model(model_name, runtime="onnx", cache_dir=cache_dir)
            key = "onnx_export_and_load_s" if models[runtime].onnx_exported else "onnx_cached_s"
            report["loads"].setdefault(key, time.perf_counter() - began)
        results += compare_runtimes(models, threads, workloads, repeats)
        if "onnx" in models and threads == thread_counts[0]:
            texts = [*questions, *passages]
            cosines = np.sum(reference.embed(texts) * models["onnx"].embed(texts), axis=1)
            report["onnx_cosine_vs_torch"] = {
                "min": float(cosines.min()),
                "mean": float(cosines.mean()),
            }
    report["results"] = [asdict(r) for r in results]
    return report


def runtime_markdown(report: dict[str, Any]) -> str:
    m, loads = report["machine"], report["loads"]
    name = "/".join(Path(report["model"]).parts[-2:])
    lines = [
        f"Model `{name}` on {m['cpu']} (torch {m['torch']} in "
        f"{report.get('torch_precision', 'fp32')}, onnxruntime {m['onnxruntime']}); "
        f"process CPU time, medians of {report['results'][0]['passes']} alternating passes.",
        "",
        "| workload | batch | threads | runtime | CPU ms/text | wall ms/text | texts/s |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        label = f"{r['workload']} ({r['texts']}, {r['tokens_mean']:.0f} wp)"
        lines.append(
            f"| {label} | {r['batch_size']} | {r['threads']} | {r['runtime']} | "
            f"{r['cpu_ms_per_text']:.2f} | {r['wall_ms_per_text']:.2f} | {r['texts_per_s']:.1f} |"
        )
    lines += ["", "Loads: " + ", ".join(f"{k} {v:.2f}" for k, v in loads.items())]
    if cosine := report.get("onnx_cosine_vs_torch"):
        lines.append(f"ONNX vs torch cosine: min {cosine['min']:.7f}, mean {cosine['mean']:.7f}")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import torch

    return {
        "cpu": cpu_name(),
        "native_bf16": cpu_supports_bf16(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
    }


def markdown(report: dict[str, Any]) -> str:
    m, t = report["machine"], report["passage_tokens"]
    name = "/".join(Path(report["model"]).parts[-2:])
    lines = [
        f"Model `{name}` on {m['cpu']} ({m['torch_threads']} torch threads, "
        f"native bf16: {'yes' if m['native_bf16'] else 'no'}, torch {m['torch']}); "
        f"{report['passages']} passages of {t['min']}-{t['max']} word pieces "
        f"(mean {t['mean']:.0f}), batch {report['batch_size']}.",
        "",
        "| precision | chunks/s | s/batch p50 | s/batch p95 | cosine vs fp32 mean | min |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['precision']} | {r['chunks_per_s']:.1f} | {r['batch_p50_s']:.3f} | "
            f"{r['batch_p95_s']:.3f} | {r['cosine_vs_fp32_mean']:.6f} | "
            f"{r['cosine_vs_fp32_min']:.6f} |"
        )
    if sorting := report.get("length_sorting"):
        lines += [
            "",
            f"Mixed-length request ({sorting['texts']} texts of 20-250 word pieces, "
            f"{sorting['precision']}):",
            "",
            "| order | chunks/s |",
            "| --- | ---: |",
            f"| sorted by length (one `encode` call) | {sorting['sorted_chunks_per_s']:.1f} |",
            f"| arrival order (one call per batch) | {sorting['arrival_order_chunks_per_s']:.1f} |",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model dir or name (default: settings)")
    parser.add_argument("--batches", type=int, default=6, help="timed batches per precision")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32,bf16")
    parser.add_argument("--skip-sorting", action="store_true", help="skip the sorting table")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--runtimes", help="compare runtimes instead, e.g. torch,onnx")
    parser.add_argument("--threads", default="1,2", help="with --runtimes: thread counts")
    parser.add_argument("--repeats", type=int, default=5, help="with --runtimes: passes each")
    parser.add_argument("--chunks", type=int, default=64, help="with --runtimes: 254-wp passages")
    parser.add_argument("--cache-dir", type=Path, help="with --runtimes: ONNX cache (default: new)")
    parser.add_argument(
        "--torch-precision", default="fp32", choices=["fp32", "bf16"], help="with --runtimes"
    )
    parser.add_argument(
        "--question-batches", default="1,4,16", help="with --runtimes: batch sizes of questions"
    )
    parser.add_argument(
        "--chunk-batches", default="32", help="with --runtimes: batch sizes of 254-wp chunks"
    )
    args = parser.parse_args(argv)
    if args.runtimes:
        run_runtimes(args, parser)
        return

    precisions: list[Precision] = []
    for name in args.precisions.split(","):
        if name not in ("fp32", "bf16"):
            parser.error(f"unknown precision {name!r}; use fp32 and/or bf16")
        precisions.append("bf16" if name == "bf16" else "fp32")
    model = load_model(args.model or default_model_name(), batch_size=args.batch_size)
    passages = corpus_passages(model, args.batches * args.batch_size)
    tokens = [model.token_count(p) for p in passages]
    results = compare_precisions(model, passages, precisions, args.batch_size)
    report: dict[str, Any] = {
        "model": model.name,
        "machine": machine(),
        "passages": len(passages),
        "passage_tokens": {"min": min(tokens), "max": max(tokens), "mean": statistics.mean(tokens)},
        "batch_size": args.batch_size,
        "results": [asdict(r) for r in results],
    }
    if not args.skip_sorting:
        best = max(results, key=lambda r: r.chunks_per_s).precision
        sorting = length_sorting(model, best, args.batch_size, len(passages))
        report["length_sorting"] = {"precision": best, **sorting}
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def run_runtimes(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    import onnxruntime

    runtimes: list[Runtime] = []
    for name in args.runtimes.split(","):
        if name not in ("torch", "onnx"):
            parser.error(f"unknown runtime {name!r}; use torch and/or onnx")
        runtimes.append("onnx" if name == "onnx" else "torch")
    threads = [int(t) for t in args.threads.split(",")]
    # As the endpoint runs (its __main__): idle OpenMP threads sleep instead of spinning.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory(prefix="onnx-cache-") as scratch:
        report = runtime_report(
            args.model or default_model_name(),
            runtimes,
            threads,
            args.repeats,
            args.chunks,
            args.cache_dir or Path(scratch),
            torch_precision="bf16" if args.torch_precision == "bf16" else "fp32",
            question_batches=[int(b) for b in args.question_batches.split(",")],
            chunk_batches=[int(b) for b in args.chunk_batches.split(",")],
        )
    report["machine"] = {**machine(), "onnxruntime": onnxruntime.__version__}
    print(runtime_markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
