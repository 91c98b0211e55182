"""The ONNX Runtime path of the embedding model, with the real model and real corpus texts.

ORT vectors must match torch's (min cosine > 0.9999) on corpus chunks and dev questions; the
export is cached and reused, a damaged cache entry is rebuilt, two processes exporting at once
leave one good entry, and pooling comes from the model's own modules (a CLS-pooling variant).
The export (about 2 s) happens once per module; tests that need a fresh cache copy it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from datatorag.settings import bundled_model_dir
from datatorag_embedding_endpoint.model import SMALL_BATCH_CHARS, EmbeddingModel, load_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
MIN_COSINE = 0.9999
# A few documents from each source, cut into full-window chunks.
CHUNK_DOCS = [
    "18f/distributed-work.md",
    "sourcegraph/pto-policy.md",
    "posthog/benefits.md",
]


def model_dir() -> str:
    return str(bundled_model_dir())


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cosines: np.ndarray = np.sum(a * b, axis=1) / (
        np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    )
    return cosines


def cache_entries(cache_dir: Path) -> list[Path]:
    """Everything under ``<cache>/onnx``: hidden names would be leftover staging dirs."""
    return sorted((cache_dir / "onnx").iterdir())


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def torch_model() -> EmbeddingModel:
    return load_model(model_dir(), precision="fp32", runtime="torch")


@pytest.fixture(scope="module")
def onnx_model(cache_dir: Path) -> EmbeddingModel:
    model = load_model(model_dir(), runtime="onnx", cache_dir=cache_dir)
    assert model.onnx_exported, "a fresh cache directory must be exported into"
    return model


@pytest.fixture(scope="module")
def questions(corpus_dir: Path) -> list[str]:
    lines = (corpus_dir / "questions-dev.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


@pytest.fixture(scope="module")
def chunks(corpus_dir: Path, torch_model: EmbeddingModel) -> list[str]:
    """Passages of up to 254 word pieces (a full window) plus the documents' short lines."""
    texts: list[str] = []
    for name in CHUNK_DOCS:
        text = (corpus_dir / "docs" / name).read_text(encoding="utf-8")
        offsets = torch_model.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )["offset_mapping"]
        for start in range(0, len(offsets), 254):
            window = offsets[start : start + 254]
            texts.append(text[window[0][0] : window[-1][1]])
        texts += [line for line in text.splitlines() if line.strip()][:4]
    return texts


def test_onnx_vectors_match_torch_on_corpus_texts(
    torch_model: EmbeddingModel,
    onnx_model: EmbeddingModel,
    chunks: list[str],
    questions: list[str],
) -> None:
    assert onnx_model.runtime == "onnx" and onnx_model.precision == "fp32"
    assert onnx_model.dimension == torch_model.dimension
    texts = [*chunks, *questions]
    expected, got = torch_model.embed(texts), onnx_model.embed(texts)
    assert got.shape == expected.shape == (len(texts), 384)
    assert row_cosines(expected, got).min() > MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # The texts are distinct: identical vectors everywhere would mean a broken forward.
    assert row_cosines(got[:-1], got[1:]).min() < 0.95
    # One question per request, as the endpoint sees a lone search.
    one_by_one = np.vstack([onnx_model.embed([q]) for q in questions])
    assert row_cosines(expected[len(chunks) :], one_by_one).min() > MIN_COSINE


def test_second_load_reuses_the_cached_export(onnx_model: EmbeddingModel, cache_dir: Path) -> None:
    assert onnx_model.onnx_file is not None
    before = onnx_model.onnx_file.stat().st_mtime_ns
    again = load_model(model_dir(), runtime="onnx", cache_dir=cache_dir)
    assert not again.onnx_exported
    assert again.onnx_file == onnx_model.onnx_file
    assert again.onnx_file.stat().st_mtime_ns == before
    assert cache_entries(cache_dir) == [onnx_model.onnx_file.parent]
    text = ["How many vacation days do I get?"]
    assert row_cosines(again.embed(text), onnx_model.embed(text))[0] > MIN_COSINE


def test_auto_in_bf16_runs_small_batches_in_onnx_and_the_rest_in_torch(
    onnx_model: EmbeddingModel, cache_dir: Path, questions: list[str], chunks: list[str]
) -> None:
    hybrid = load_model(model_dir(), precision="bf16", runtime="auto", cache_dir=cache_dir)
    assert (hybrid.runtime, hybrid.precision, hybrid.small_batch_runtime) == (
        "torch",
        "bf16",
        "onnx",
    )
    assert not hybrid.onnx_exported  # the module's export is reused
    bf16 = load_model(model_dir(), precision="bf16", runtime="torch")
    assert bf16.small_batch_runtime is None
    few, many = questions[:3], questions[:8]
    lone_chunk = [max(chunks, key=len)]
    assert sum(map(len, few)) <= SMALL_BATCH_CHARS < min(sum(map(len, many)), len(lone_chunk[0]))
    # bf16 and fp32 vectors differ enough to tell which runtime ran, and agree as vectors.
    assert np.abs(bf16.embed(few) - onnx_model.embed(few)).max() > 1e-4
    assert row_cosines(bf16.embed(few), onnx_model.embed(few)).min() > 0.999
    np.testing.assert_allclose(hybrid.embed(few), onnx_model.embed(few), atol=1e-6)
    np.testing.assert_allclose(hybrid.embed(many), bf16.embed(many), atol=1e-6)
    np.testing.assert_allclose(hybrid.embed(few[:1]), onnx_model.embed(few[:1]), atol=1e-6)
    np.testing.assert_allclose(hybrid.embed(lone_chunk), bf16.embed(lone_chunk), atol=1e-6)


def test_onnx_threads_follow_torch(onnx_model: EmbeddingModel, cache_dir: Path) -> None:
    import torch

    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        model = load_model(model_dir(), runtime="onnx", cache_dir=cache_dir)
    finally:
        torch.set_num_threads(previous)
    assert model.threads == 1
    assert onnx_model.threads == previous


def _wrong_weights(file: Path) -> None:
    """A well-formed model with its largest weight zeroed: loads fine, answers wrongly."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(file))
    largest = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    zeros = np.zeros(tuple(largest.dims), dtype=numpy_helper.to_array(largest).dtype)
    largest.CopyFrom(numpy_helper.from_array(zeros, largest.name))
    onnx.save(graph, str(file))


def _truncated(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [_truncated, _wrong_weights], ids=["truncated", "wrong"])
def test_a_damaged_cached_export_is_rebuilt(
    damage: object,
    onnx_model: EmbeddingModel,
    cache_dir: Path,
    torch_model: EmbeddingModel,
    questions: list[str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert onnx_model.onnx_file is not None and callable(damage)
    shutil.copytree(cache_dir / "onnx", tmp_path / "onnx")
    damaged = tmp_path / "onnx" / onnx_model.onnx_file.parent.name / "model.onnx"
    damage(damaged)
    broken = damaged.read_bytes()
    with caplog.at_level(logging.WARNING, logger="datatorag_embedding_endpoint.onnx_export"):
        model = load_model(model_dir(), runtime="onnx", cache_dir=tmp_path)
    assert model.onnx_exported
    assert model.onnx_file == damaged and damaged.read_bytes() != broken
    assert "exporting again" in caplog.text
    assert [p.name for p in cache_entries(tmp_path)] == [damaged.parent.name]
    assert row_cosines(torch_model.embed(questions), model.embed(questions)).min() > MIN_COSINE


_LOAD_SCRIPT = """
import json, logging, sys, time
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from datatorag_embedding_endpoint.model import load_model
import sentence_transformers, torch  # noqa: F401  (imported before the barrier)
ready, go = Path(sys.argv[3]), Path(sys.argv[4])
ready.touch()
while not go.exists():
    time.sleep(0.01)
model = load_model(sys.argv[1], runtime="onnx", cache_dir=sys.argv[2])
print(json.dumps(model.embed(["When is payday?"]).tolist()))
"""


def test_two_processes_exporting_at_once_leave_one_good_entry(
    tmp_path: Path, torch_model: EmbeddingModel
) -> None:
    """Both processes find an empty cache and export together (a barrier lines them up after
    the imports); both must load, and the cache must hold one entry and no staging leftovers."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    path = [str(REPO / "core"), str(REPO / "services" / "embedding-endpoint")]
    env["PYTHONPATH"] = os.pathsep.join([*path, env.get("PYTHONPATH", "")])
    cache, go = tmp_path / "cache", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _LOAD_SCRIPT, model_dir(), cache, tmp_path / f"r{i}", go],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        while not all((tmp_path / f"r{i}").exists() for i in range(2)):
            assert all(p.poll() is None for p in procs), "a loader exited before the barrier"
            time.sleep(0.05)
        go.touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    vectors = np.array([json.loads(out)[0] for out, _ in outputs])
    expected = torch_model.embed(["When is payday?"])
    assert row_cosines(vectors, np.vstack([expected, expected])).min() > MIN_COSINE
    entries = cache_entries(cache)
    assert len(entries) == 1 and not entries[0].name.startswith("."), entries
    assert (entries[0] / "model.onnx").is_file()


def _cls_pooling_copy(target: Path) -> Path:
    """The bundled model with CLS pooling instead of mean: a different sentence-transformers
    model (the weights are linked, not copied)."""
    source = Path(model_dir())
    for path in source.rglob("*"):
        dest = target / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif path.stat().st_size > 1 << 20:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(path)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
    pooling = target / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    pooling.write_text(json.dumps(config))
    return target


@pytest.fixture
def cls_model_dir(tmp_path: Path) -> Iterator[Path]:
    yield _cls_pooling_copy(tmp_path / "cls-model")


def test_pooling_comes_from_the_models_own_modules(
    cls_model_dir: Path, torch_model: EmbeddingModel, questions: list[str], tmp_path: Path
) -> None:
    cls_torch = load_model(str(cls_model_dir), precision="fp32", runtime="torch")
    cls_onnx = load_model(str(cls_model_dir), runtime="onnx", cache_dir=tmp_path / "cache")
    expected, got = cls_torch.embed(questions), cls_onnx.embed(questions)
    assert row_cosines(expected, got).min() > MIN_COSINE
    # CLS vectors are not the mean-pooled ones: the pooling really changed.
    assert row_cosines(torch_model.embed(questions), got).mean() < 0.98


def test_the_endpoint_serves_the_onnx_model(
    onnx_model: EmbeddingModel, torch_model: EmbeddingModel, questions: list[str]
) -> None:
    from fastapi.testclient import TestClient

    from datatorag_embedding_endpoint.app import create_app

    with TestClient(create_app(lambda: onnx_model)) as client:
        for _ in range(600):
            if (ping := client.get("/ping")).status_code == 200:
                break
            time.sleep(0.05)
        assert ping.json()["runtime"] == "onnx" and ping.json()["precision"] == "fp32"
        response = client.post("/invocations", json={"inputs": questions[:8]})
        assert response.status_code == 200
    got = np.array(response.json()["embeddings"])
    assert row_cosines(torch_model.embed(questions[:8]), got).min() > MIN_COSINE
