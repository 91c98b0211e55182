"""Choosing the embedding runtime, and the key of the ONNX export cache (no model loaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datatorag_embedding_endpoint.cpu import resolve_runtime, resolve_small_batch_runtime
from datatorag_embedding_endpoint.model import load_model
from datatorag_embedding_endpoint.onnx_export import model_fingerprint

pytestmark = pytest.mark.unit


def test_onnx_refuses_bf16_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bf16 applies to the torch runtime only"):
        load_model("unused", precision="bf16", runtime="onnx", cache_dir=tmp_path)


def test_onnx_needs_a_cache_dir() -> None:
    with pytest.raises(ValueError, match="cache_dir"):
        load_model("unused", precision="fp32", runtime="onnx")
    with pytest.raises(ValueError, match="cache_dir"):  # auto picks onnx for fp32
        load_model("unused", precision="fp32", runtime="auto")


AVX2 = frozenset({"avx", "avx2", "fma"})
AMX = frozenset({"avx2", "avx512f", "amx_bf16", "amx_tile"})


def test_auto_runtime_is_torch_only_where_it_runs_bf16() -> None:
    assert resolve_runtime("auto", "auto", AVX2) == "onnx"
    assert resolve_runtime("auto", "auto", AMX) == "torch"  # bf16 autocast on AMX beats fp32
    assert resolve_runtime("auto", "bf16", AVX2) == "torch"  # bf16 asked for: only torch has it
    assert resolve_runtime("auto", "fp32", AMX) == "onnx"
    assert resolve_runtime("torch", "fp32", AVX2) == "torch"
    assert resolve_runtime("onnx", "auto", AMX) == "onnx"


def test_auto_sends_small_batches_to_onnx_only_where_it_runs_torch_in_bf16() -> None:
    assert resolve_small_batch_runtime("auto", "auto", AMX) == "onnx"
    assert resolve_small_batch_runtime("auto", "bf16", AVX2) == "onnx"
    assert resolve_small_batch_runtime("auto", "auto", AVX2) is None  # all onnx already
    assert resolve_small_batch_runtime("auto", "fp32", AMX) is None
    assert resolve_small_batch_runtime("torch", "auto", AMX) is None  # torch asked for: torch


def test_auto_in_bf16_needs_a_cache_dir_for_its_small_batches() -> None:
    with pytest.raises(ValueError, match="cache_dir"):
        load_model("unused", precision="bf16", runtime="auto")


def test_unknown_runtime_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown embedding runtime 'tensorrt'"):
        load_model("unused", runtime="tensorrt", cache_dir=tmp_path)  # type: ignore[arg-type]


def fake_model(root: Path) -> Path:
    """A model-shaped directory: small config files and a weights file over 1 MiB."""
    (root / "1_Pooling").mkdir(parents=True)
    (root / "config.json").write_text('{"hidden_size": 384}')
    (root / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (root / "model.safetensors").write_bytes(b"\1" * (2 << 20))
    return root


def test_fingerprint_is_stable_and_ignores_other_backends_exports(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "m")
    key = model_fingerprint(model)
    assert key == model_fingerprint(model)
    (model / "onnx").mkdir()
    (model / "onnx" / "model.onnx").write_bytes(b"an export shipped with the model")
    assert model_fingerprint(model) == key


def test_fingerprint_follows_config_content(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "m")
    key = model_fingerprint(model)
    (model / "config.json").write_text('{"hidden_size": 768}')  # same size, other content
    assert model_fingerprint(model) != key


def test_fingerprint_follows_weights_size_and_mtime(tmp_path: Path) -> None:
    model = fake_model(tmp_path / "m")
    key = model_fingerprint(model)
    weights = model / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = model_fingerprint(model)
    assert touched != key
    weights.write_bytes(b"\1" * (3 << 20))
    assert model_fingerprint(model) not in {key, touched}


def test_fingerprint_of_a_copy_with_the_same_files_is_the_same(tmp_path: Path) -> None:
    """A copy that keeps mtimes (cp -p, a Docker layer) reuses the export."""
    import shutil

    model = fake_model(tmp_path / "m")
    copy = Path(shutil.copytree(model, tmp_path / "copy"))  # copy2 keeps mtimes
    assert model_fingerprint(copy) == model_fingerprint(model)
