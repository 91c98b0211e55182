"""The embedding model: a sentence-transformers model run on the CPU in fp32 or bf16 autocast.

bf16 autocast pays off only where the CPU has native bf16 matrix units (AMX, AVX512-BF16): there
it embeds several times faster than fp32 with a cosine agreement above 0.9999. Elsewhere torch
emulates bf16 and it is several times *slower* (measured 6x on an AVX2 EPYC), so ``auto`` picks it
only when the CPU flags say so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16"]
RequestedPrecision = Literal["auto", "fp32", "bf16"]
Vectors = npt.NDArray[np.float32]

# CPU flags (Linux /proc/cpuinfo) that mean bf16 matrix maths runs in hardware.
_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def _cpuinfo_field(names: tuple[str, ...], cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The first CPU's value for one of ``names``; None where /proc/cpuinfo is missing."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in names:
            return value.strip()
    return None


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags; empty where /proc/cpuinfo is missing (macOS, Windows)."""
    return frozenset((_cpuinfo_field(("flags", "Features")) or "").split())


def cpu_name() -> str:
    return _cpuinfo_field(("model name",)) or platform.processor() or platform.machine()


def cpu_supports_bf16(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU runs bf16 matrix products natively (AMX or AVX512-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return bool(flags & _BF16_FLAGS)


def resolve_precision(
    requested: RequestedPrecision, flags: frozenset[str] | None = None
) -> Precision:
    """``auto`` becomes bf16 on CPUs with native bf16 units and fp32 everywhere else."""
    if requested != "auto":
        return requested
    return "bf16" if cpu_supports_bf16(flags) else "fp32"


@dataclass
class EmbeddingModel:
    """A loaded sentence-transformers model; ``embed`` is not thread-safe (one worker calls it)."""

    name: str
    precision: Precision
    batch_size: int
    _model: SentenceTransformer = field(repr=False)

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

    def embed(self, texts: Sequence[str]) -> Vectors:
        """L2-normalised float32 vectors, shape ``(len(texts), dimension)``.

        sentence-transformers sorts the texts by length before cutting them into batches of
        ``batch_size``, so a mixed request pads each batch only to its own longest text.
        """
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        import torch

        autocast = (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if self.precision == "bf16"
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
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


def load_model(
    name_or_path: str, *, precision: RequestedPrecision = "auto", batch_size: int = 32
) -> EmbeddingModel:
    """Load a sentence-transformers model dir or cached hub name, without touching the network."""
    # Before the import: huggingface_hub reads it once. An operator may still set it to 0.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    chosen = resolve_precision(precision)
    st = SentenceTransformer(str(name_or_path), device="cpu")
    st.eval()
    model = EmbeddingModel(
        name=str(name_or_path), precision=chosen, batch_size=batch_size, _model=st
    )
    log.info(
        "loaded embedding model %s: dimension %d, window %d word pieces, precision %s "
        "(requested %s, CPU %s, native bf16 %s)",
        model.name,
        model.dimension,
        model.max_seq_length,
        chosen,
        precision,
        cpu_name(),
        cpu_supports_bf16(),
    )
    return model
