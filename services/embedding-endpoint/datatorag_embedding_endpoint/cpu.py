"""Which precision and runtime suit this CPU: its flags, read from /proc/cpuinfo.

Torch runs in fp32 or bf16 autocast. bf16 autocast pays off only where the CPU has native bf16
matrix units (AMX, AVX512-BF16): there it embeds several times faster than fp32 with a cosine
agreement above 0.9999. Elsewhere torch emulates bf16 and it is several times *slower* (measured
6x on an AVX2 EPYC), so ``auto`` picks it only when the CPU flags say so.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Literal

Precision = Literal["fp32", "bf16"]
RequestedPrecision = Literal["auto", "fp32", "bf16"]
Runtime = Literal["torch", "onnx"]
RequestedRuntime = Literal["auto", "torch", "onnx"]

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


def resolve_runtime(
    requested: RequestedRuntime,
    precision: RequestedPrecision,
    flags: frozenset[str] | None = None,
) -> Runtime:
    """``auto`` becomes torch where the precision resolves to bf16 (native bf16 units, or bf16
    asked for), since ONNX Runtime runs fp32 only; onnx everywhere else: on an AVX2 EPYC it takes
    40-55% less CPU time for a lone question and about the same (median +3%, within the noise)
    for full-window chunks (bench/model_throughput.py --runtimes)."""
    if requested != "auto":
        return requested
    return "torch" if resolve_precision(precision, flags) == "bf16" else "onnx"


def resolve_small_batch_runtime(
    requested: RequestedRuntime,
    precision: RequestedPrecision,
    flags: frozenset[str] | None = None,
) -> Runtime | None:
    """Where ``auto`` runs torch in bf16, passes of a few short texts (lone questions) go to ONNX
    Runtime in fp32 instead: bf16 autocast casts the weights on every pass, which one question
    does not amortise (on an AMX Xeon: 21.6 ms of CPU for a lone question against 10.0 in ONNX
    Runtime; torch wins from 8 questions, see docs/benchmarks.md). None: one runtime for all."""
    if requested == "auto" and resolve_precision(precision, flags) == "bf16":
        return "onnx"
    return None
