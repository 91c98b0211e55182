"""Query cost: dynamic int8 quantisation of the model, judged on retrieval and CPU per query.

    python bench/int8_eval.py [--corpus ../shared/corpus] [--data-dir DIR] [--json out.json]

Ingests the corpus's LibreOffice PDFs through the running stack as ``bench/retrieval_eval.py``
does (tenant ``eval``: chunks embedded by the endpoint in fp32, ONNX Runtime). Then, in this
process, the same ONNX export is quantised with ONNX Runtime's ``quantize_dynamic`` (int8
weights, activations quantised per batch at run time; ``--per-channel`` for per-channel weight
scales) and every chunk set the processor wrote is embedded again by the int8 model into a
second tenant (same chunks, same contextual texts, same index code). The dev questions are then
scored on both tenants, each with the questions embedded by its own model, with
``retrieval_eval.score`` (hit@k and MRR by document id, evidence@5). Last, the CPU time of one
uncached question embedding (batch of 1, process CPU over all threads) for fp32 and int8, the
median over every dev question, alternating models over ``--repeats`` passes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import CORPUS, ingest, manifest_id, questions, running_stack
from bench.retrieval_eval import TOP, corpus_loose, score
from datatorag.settings import Settings

FP32 = "eval"


def int8_model(settings: Settings, per_channel: bool, scratch: Path) -> Any:
    """The endpoint's model with its transformer run by a dynamically quantised ONNX file."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from datatorag_embedding_endpoint import onnx_export
    from datatorag_embedding_endpoint.model import load_model

    model = load_model(settings.embedding_model, runtime="onnx", cache_dir=scratch)
    assert model.onnx_file is not None
    quantised = scratch / "model-int8.onnx"
    quantize_dynamic(
        model.onnx_file, quantised, weight_type=QuantType.QInt8, per_channel=per_channel
    )
    transformer = onnx_export._text_transformer(model._model)
    forward = onnx_export.OrtForward(
        onnx_export._session(quantised), str(transformer.module_output_name)
    )
    transformer.forward = forward
    model._onnx = forward
    model.weights = "int8"  # another embedding space (datatorag.domain.spaces)
    return model


def reembed(settings: Settings, model: Any, tenant: str) -> tuple[int, float]:
    """Copy tenant FP32's documents into ``tenant`` with their chunks embedded by ``model``."""
    from datatorag import wiring
    from datatorag.domain.blob_keys import chunks_key
    from datatorag.domain.models import ChunkSet, DocumentStatus, IndexedChunk
    from datatorag.domain.text import contextual_text

    index, blobs = wiring.search_index(settings), wiring.blob_store(settings)
    chunks, began = 0, time.perf_counter()
    for doc in index.list_documents(FP32, status=DocumentStatus.INDEXED, limit=10_000):
        key = chunks_key(FP32, doc.doc_id, doc.version)
        chunk_set = ChunkSet.model_validate_json(blobs.get(key))
        texts = [
            contextual_text(chunk_set.title, c.heading, c.text, chunk_set.source_label)
            for c in chunk_set.chunks
        ]
        vectors = model.embed(texts)
        index.upsert_document(
            doc.model_copy(update={"tenant": tenant, "status": DocumentStatus.FETCHED})
        )
        index.replace_chunks(
            tenant,
            doc.doc_id,
            doc.version,
            [
                IndexedChunk(**c.model_dump(), vector=v.tolist())
                for c, v in zip(chunk_set.chunks, vectors, strict=True)
            ],
            title=chunk_set.title,
            page_count=chunk_set.page_count,
            metadata=chunk_set.metadata,
        )
        chunks += len(texts)
    return chunks, time.perf_counter() - began


def retrieval(settings: Settings, tenant: str, model: Any, qs: list, loose: Any) -> dict:
    from datatorag import wiring
    from datatorag.usecases.search import Searcher

    searcher = Searcher(wiring.search_index(settings), model)

    def mode(name: str) -> Any:
        return lambda q: [
            (manifest_id(h.source_uri), h.text) for h in searcher.search(tenant, q, TOP, name)
        ]

    return {name: score(qs, mode(name), loose) for name in ("vector", "hybrid")}


def query_cpu_ms(models: dict[str, Any], texts: list[str], repeats: int) -> dict[str, dict]:
    """Median process CPU and wall ms of embedding one question alone, per model."""
    cpu: dict[str, list[float]] = {name: [] for name in models}
    wall: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():
        model.embed(texts[:4])  # warm-up
    for _ in range(repeats):
        for name, model in models.items():
            for text in texts:
                c, w = time.process_time(), time.perf_counter()
                model.embed([text])
                cpu[name].append((time.process_time() - c) * 1000)
                wall[name].append((time.perf_counter() - w) * 1000)
    return {
        name: {
            "cpu_ms_p50": round(statistics.median(cpu[name]), 2),
            "wall_ms_p50": round(statistics.median(wall[name]), 2),
            "threads": models[name].threads,
        }
        for name in models
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--data-dir", type=Path, help="reuse an ingested data directory")
    parser.add_argument("--per-channel", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    qs = questions(args.corpus / "questions-dev.jsonl")
    loose = corpus_loose(args.corpus)
    # fp32 explicitly: ``auto`` picks bf16 autocast on CPUs with AMX; fp32 runs on ONNX Runtime.
    with running_stack(args.data_dir, DATATORAG_EMBEDDING_PRECISION="fp32") as stack:
        settings = stack.settings
        docs, seconds = ingest(settings, args.corpus / "pdf" / "libreoffice", FP32)
        print(f"ingested {len(docs)} documents in {seconds:.0f} s", file=sys.stderr)
    from datatorag_embedding_endpoint.model import load_model

    with tempfile.TemporaryDirectory(prefix="int8-") as scratch:
        fp32 = load_model(settings.embedding_model, runtime="onnx", cache_dir=Path(scratch))
        default = load_model(settings.embedding_model, runtime="auto", cache_dir=Path(scratch))
        int8 = int8_model(settings, args.per_channel, Path(scratch))
        int8_tenant = "eval-int8-pc" if args.per_channel else "eval-int8"
        chunks, reembed_s = reembed(settings, int8, int8_tenant)
        print(f"re-embedded {chunks} chunks in int8 in {reembed_s:.0f} s", file=sys.stderr)
        texts = [str(q["question"]) for q in qs]
        cosines = np.sum(fp32.embed(texts) * int8.embed(texts), axis=1)
        result = {
            "quantisation": "onnxruntime quantize_dynamic, QInt8 weights"
            + (", per channel" if args.per_channel else ", per tensor"),
            "chunks": chunks,
            "int8_chunks_per_s_reembedding": round(chunks / reembed_s, 1),
            "question_cosine_int8_to_fp32": {
                "mean": round(float(cosines.mean()), 4),
                "min": round(float(cosines.min()), 4),
            },
            "retrieval": {
                "fp32": retrieval(settings, FP32, fp32, qs, loose),
                "int8": retrieval(settings, int8_tenant, int8, qs, loose),
            },
            "uncached_query": query_cpu_ms(
                {
                    "fp32": fp32,
                    "int8": int8,
                    f"auto ({default.runtime} {default.precision})": default,
                },
                texts,
                args.repeats,
            ),
        }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
