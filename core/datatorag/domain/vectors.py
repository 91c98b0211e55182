"""Vector rules every index backend shares: what a valid vector is, and unit length."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from datatorag.domain.models import IndexedChunk

FloatArray = npt.NDArray[np.float32]


def unit_vector(vector: FloatArray, what: str) -> FloatArray:
    """``vector`` scaled to length 1 (a zero vector stays zero); ``ValueError`` names ``what``
    when it is not a flat list of finite numbers."""
    if vector.ndim != 1 or vector.shape[0] == 0:
        raise ValueError(f"{what} must be a non-empty flat list of numbers")
    if not np.isfinite(vector).all():
        raise ValueError(f"{what} holds NaN or infinite values")
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def chunk_vectors(doc_id: str, chunks: Sequence[IndexedChunk]) -> FloatArray:
    """Validated, unit-normalised vectors of one document's chunks, one row each."""
    seen: set[str] = set()
    for chunk in chunks:
        if chunk.doc_id != doc_id:
            raise ValueError(
                f"chunk {chunk.chunk_id!r} belongs to {chunk.doc_id!r}, not {doc_id!r}"
            )
        if chunk.chunk_id in seen:
            raise ValueError(f"duplicate chunk id {chunk.chunk_id!r}")
        seen.add(chunk.chunk_id)
    if not chunks:
        return np.zeros((0, 0), np.float32)
    dimensions = {len(c.vector) for c in chunks}
    if len(dimensions) != 1:
        raise ValueError(f"chunk vectors of one document differ in length: {sorted(dimensions)}")
    matrix = np.asarray([c.vector for c in chunks], dtype=np.float32)
    return np.stack(
        [
            unit_vector(row, f"vector of chunk {c.chunk_id!r}")
            for row, c in zip(matrix, chunks, strict=True)
        ]
    )
