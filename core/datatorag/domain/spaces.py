"""Embedding spaces: which model's vectors may be compared with which.

A space is named ``<model>/<weights>/<dimension>``, e.g. ``all-MiniLM-L6-v2/fp32/384``: the
model (its directory's or hub name's last part), the precision of its weights, and the vector
size. Two vectors are comparable only when their spaces' names are equal.

What is left out of the name on purpose: the runtime and the activation precision. ONNX Runtime
and torch agree to a cosine of 0.9999999, bf16 autocast and fp32 to 0.99998 (mean over corpus
chunks and dev questions; ``bench/vector_spaces.py``, docs/benchmarks.md), and ranking agrees too:
switching between them must not force a re-embed. Quantised weights do change the space: int8
vectors agree with fp32's to a cosine of only 0.95-0.97.
"""

from __future__ import annotations

import re

_PART = r"[A-Za-z0-9][\w.+-]*"
_NAME = re.compile(rf"{_PART}/{_PART}/[1-9][0-9]*")
MAX_NAME_CHARS = 200


def space_name(model: str, weights: str, dimension: int) -> str:
    """The space of ``model`` (a directory or hub name: its last part counts, other characters
    than letters, digits and ``_.+-`` made ``-``) with ``weights`` (``fp32``, ``int8``...) and
    ``dimension``-long vectors."""
    base = re.sub(r"[^\w.+-]", "-", model.rstrip("/").rsplit("/", 1)[-1]).lstrip("_.+-")
    return check_space(f"{base or 'model'}/{weights}/{dimension}")


def check_space(name: str) -> str:
    """``name`` if it is a well-formed space name; ``ValueError`` otherwise."""
    if len(name) > MAX_NAME_CHARS or not _NAME.fullmatch(name):
        raise ValueError(
            f"{name[:MAX_NAME_CHARS]!r} is not an embedding space name "
            "(<model>/<weights>/<dimension>, e.g. all-MiniLM-L6-v2/fp32/384)"
        )
    return name


def space_dimension(name: str) -> int:
    return int(check_space(name).rsplit("/", 1)[1])


def fallback_space(configured: str | None, dimension: int) -> str:
    """The space of vectors from an endpoint that does not say which model it runs (TEI, a
    plain Hugging Face DLC): the operator's ``DATATORAG_EMBEDDING_SPACE`` while its dimension
    fits, else ``unreported/unknown/<dimension>`` (then only a change of dimension shows)."""
    if configured and space_dimension(configured) == dimension:
        return configured
    return space_name("unreported", "unknown", dimension)
