"""The ``onnx`` runtime: the model's transformer exported to ONNX once, run by ONNX Runtime.

It runs in fp32 and keeps every other sentence-transformers part (tokenizer, length sorting and
batching, pooling, dense layers, normalisation), so vectors agree with torch's to a cosine above
0.9999. The transformer is exported once per model content into a cache directory and reused on
later starts; a cached file that does not load or disagrees with torch is exported again.
sentence-transformers' own ``backend="onnx"`` needs optimum-onnx, which pins transformers < 4.58
(this project runs 5.x), hence the export here.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnxruntime
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

# Bump when the export changes, so that caches built by older code are not reused.
_EXPORT_FORMAT = 1
_ONNX_OPSET = 17
_ONNX_FILE = "model.onnx"
# Files up to this size count by content in the cache key; larger ones (weights) by size+mtime.
_HASH_CONTENT_BELOW = 1 << 20
# Two texts of different lengths: the traced batch must carry padding in its attention mask,
# or the export may bake in a mask-free attention path.
_PROBE_TEXTS = (
    "Probe.",
    "A longer probe text, so that the exported batch has padding in its attention mask.",
)
_MIN_PROBE_COSINE = 0.9999


def _text_transformer(st: SentenceTransformer) -> Any:
    """The model's first module, if ONNX can stand in for it: a Hugging Face text transformer."""
    from sentence_transformers.base.modules.transformer import Transformer

    first = st[0]
    text = getattr(first, "modality_config", {}).get("text", {})
    if not isinstance(first, Transformer) or text.get("method") != "forward":
        raise ValueError(
            f"the onnx runtime runs models whose first module is a text Transformer; this one "
            f"starts with {type(first).__name__}: use the torch runtime"
        )
    return first


def _model_dir(name_or_path: str) -> Path:
    """The local directory of a model dir or of a hub name already in the Hugging Face cache."""
    path = Path(name_or_path)
    if path.is_dir():
        return path.resolve()
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name_or_path, local_files_only=True))


def model_fingerprint(model_dir: Path) -> str:
    """A key for the export of ``model_dir``: its files (small ones by content, weights by size
    and mtime) plus the export settings and the torch and transformers versions that trace it."""
    import torch
    import transformers

    digest = hashlib.sha256(
        f"format={_EXPORT_FORMAT} opset={_ONNX_OPSET} torch={torch.__version__} "
        f"transformers={transformers.__version__}\n".encode()
    )
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(model_dir).as_posix()
        if relative.split("/")[0] in {"onnx", "openvino", ".git", ".cache"}:
            continue  # other backends' exports and VCS data do not change the torch model
        size = path.stat().st_size
        digest.update(f"{relative}\0{size}\0".encode())
        if size < _HASH_CONTENT_BELOW:
            digest.update(path.read_bytes())
        else:
            digest.update(str(path.stat().st_mtime_ns).encode())
    return digest.hexdigest()[:24]


def _export_onnx(st: SentenceTransformer, target: Path) -> None:
    """Trace the first module (features in, token embeddings out) to ONNX at ``target``."""
    import torch

    transformer = _text_transformer(st)
    features = st.preprocess(list(_PROBE_TEXTS))
    names = [key for key, value in features.items() if isinstance(value, torch.Tensor)]
    output = str(transformer.module_output_name)

    class Traced(torch.nn.Module):
        """Positional tensors in (what the exporter traces), the module's own forward inside."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = transformer

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            result: torch.Tensor = self.inner(dict(zip(names, tensors, strict=True)))[output]
            return result

    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, output]}
    with _eager_attention(transformer), torch.no_grad(), warnings.catch_warnings():
        # The TorchScript tracer warns about Python branches on shapes; the probe check after
        # loading verifies that the traced graph agrees with torch on a padded batch.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Traced().eval(),
            tuple(features[name] for name in names),
            str(target),
            input_names=names,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=_ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


@contextlib.contextmanager
def _eager_attention(transformer: Any) -> Iterator[None]:
    """Trace the plain attention maths rather than torch's SDPA kernel: ONNX Runtime runs it
    faster (MiniLM, 254-word-piece chunks, one thread: 81-87 ms a text against 92-94 traced from
    SDPA; torch 87-89). Models that cannot switch are traced as they are."""
    model: Any = getattr(transformer, "model", None)
    previous = getattr(getattr(model, "config", None), "_attn_implementation", None)
    try:
        model.set_attn_implementation("eager")
    except (AttributeError, ValueError, ImportError, TypeError) as exc:
        log.info("exporting with the model's own attention (%s): %s", previous, exc)
        yield
        return
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


def _cached_export(st: SentenceTransformer, entry: Path) -> bool:
    """Make sure ``entry/model.onnx`` exists; True when this call exported it.

    The export goes to a temporary directory beside ``entry`` and is renamed into place, so a
    reader never sees a half-written file and two processes starting at once both end up with
    one complete export (the loser of the rename discards its own).
    """
    if (entry / _ONNX_FILE).is_file():
        return False
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        began = time.perf_counter()
        _export_onnx(st, staging / _ONNX_FILE)
        try:
            staging.rename(entry)
        except OSError:
            if not (entry / _ONNX_FILE).is_file():
                raise
            log.info("another process exported %s first; using its file", entry)
            return False
        log.info("exported the transformer to %s in %.1f s", entry, time.perf_counter() - began)
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _discard(entry: Path) -> None:
    """Remove a cache entry: renamed aside first, so the entry path is never half-deleted."""
    trash = entry.with_name(f".{entry.name}.discarded-{os.getpid()}-{time.monotonic_ns()}")
    with contextlib.suppress(FileNotFoundError):  # another process discarded it already
        entry.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def _session(file: Path) -> onnxruntime.InferenceSession:
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The same thread count as torch would use (OMP_NUM_THREADS or the cores); no spinning
    # between runs, for the reason __main__ sets OMP_WAIT_POLICY=PASSIVE: a spinning pool
    # takes the core the API needs.
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])


class OrtForward:
    """Stands in for the transformer module's forward: same features in, same key out."""

    def __init__(self, session: onnxruntime.InferenceSession, output: str) -> None:
        self._session = session
        self._inputs = [i.name for i in session.get_inputs()]
        self._output = output

    @property
    def threads(self) -> int:
        return int(self._session.get_session_options().intra_op_num_threads)

    def run(self, features: dict[str, Any]) -> npt.NDArray[np.float32]:
        feeds = {name: features[name].numpy() for name in self._inputs}
        out: npt.NDArray[np.float32] = self._session.run([self._output], feeds)[0]
        return out

    def __call__(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        import torch

        if kwargs:
            raise TypeError(f"the onnx runtime takes no forward arguments, got {sorted(kwargs)}")
        features[self._output] = torch.from_numpy(self.run(features))
        return features


def _probe_agreement(st: SentenceTransformer, forward: OrtForward) -> float:
    """Lowest cosine between torch's and ONNX Runtime's token vectors on a padded probe batch."""
    import torch

    transformer = _text_transformer(st)
    features = st.preprocess(list(_PROBE_TEXTS))
    with torch.inference_mode():
        expected = transformer(dict(features))[transformer.module_output_name].numpy()
    got = forward.run(features)
    if got.shape != expected.shape:
        return -1.0
    real = features["attention_mask"].numpy().astype(bool)  # padding positions may differ
    a, b = expected[real], got[real]
    cosines = np.sum(a * b, axis=1) / np.maximum(
        np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12
    )
    return float(cosines.min())


def _checked_forward(st: SentenceTransformer, file: Path) -> OrtForward:
    """An ONNX Runtime forward on ``file``, refused unless it agrees with torch on the probe."""
    forward = OrtForward(_session(file), str(_text_transformer(st).module_output_name))
    agreement = _probe_agreement(st, forward)
    if not agreement > _MIN_PROBE_COSINE:  # also catches NaN
        raise ValueError(f"{file} disagrees with torch (cosine {agreement:.6f})")
    return forward


def onnx_forward(
    st: SentenceTransformer, name_or_path: str, cache_dir: Path
) -> tuple[OrtForward, Path, bool]:
    """An ONNX Runtime forward for ``st``'s transformer; returns it, its file and whether this
    call exported the file. A cached file that does not load or disagrees with torch is rebuilt.
    """
    model_dir = _model_dir(name_or_path)
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", model_dir.name)
    entry = cache_dir / "onnx" / f"{label}-{model_fingerprint(model_dir)}"
    exported = _cached_export(st, entry)
    try:
        forward = _checked_forward(st, entry / _ONNX_FILE)
    except Exception as exc:  # ORT raises its own types for bad protobufs, graphs and shapes
        if exported:
            raise  # a fresh export that fails would fail again: not a cache problem
        log.warning("cached ONNX export %s is unusable (%s); exporting again", entry, exc)
        _discard(entry)
        exported = _cached_export(st, entry)
        forward = _checked_forward(st, entry / _ONNX_FILE)
    return forward, entry / _ONNX_FILE, exported


def use_onnx(
    st: SentenceTransformer, name_or_path: str, cache_dir: Path
) -> tuple[OrtForward, Path, bool]:
    """Swap ``st``'s transformer forward for ONNX Runtime for good (``onnx_forward``)."""
    forward, file, exported = onnx_forward(st, name_or_path, cache_dir)
    # nn.Module.__call__ looks ``forward`` up on the instance first: everything else in
    # sentence-transformers' encode (tokenising, sorting, batching, pooling) stays as it is.
    _text_transformer(st).forward = forward
    return forward, file, exported


@contextlib.contextmanager
def forward_replaced(st: SentenceTransformer, forward: OrtForward) -> Iterator[None]:
    """Run ``st``'s transformer through ``forward`` inside the block only (one thread at a time:
    the swap is an attribute of the shared module)."""
    transformer = _text_transformer(st)
    transformer.forward = forward
    try:
        yield
    finally:
        del transformer.forward  # back to the class's own forward
