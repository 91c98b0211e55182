"""Whether an HNSW graph answers well enough to be served, and with which ``ef``.

HNSW has no guarantee: on some data (clusters of near-copies larger than a node's links) the
search enters the wrong region and cannot leave it, and no ``ef`` helps (docs/benchmarks.md,
"Approximate vector search"). So each graph is measured once, where it is built (in the
background): its top 10 for queries drawn from the tenant's own vectors against exact search
over the same rows. Half the queries are a stored vector moved by isotropic noise, half the
normalised mean of two random stored vectors: questions fall near passages, or between them.
The smallest ``ef`` of the ladder whose recall@10 reaches the bar is served; when none does the
tenant is searched exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from datatorag.domain.vectors import FloatArray

TOP = 10  # recall@10: what a search's first page needs
QUERIES = 200  # recall over 2,000 neighbours: about +-0.003 at 0.98
NOISE = 0.9  # norm of the noise added to a stored vector: cosine ~0.74, like a question's
BATCH = 64  # queries scored exactly at once (a batch of 64 over 118k rows: 30 MB)


@dataclass(frozen=True)
class Calibration:
    ef: int | None  # the smallest ef reaching the bar; None: none did, search exactly
    recall: float  # recall@10 at ``ef`` (when None, at the ladder's largest)
    seconds: float


def sample_queries(vectors: FloatArray, count: int, seed: int = 0) -> FloatArray:
    """``count`` unit queries near or between random rows of ``vectors``."""
    rng = np.random.default_rng(seed)
    rows, dimension = vectors.shape
    near = vectors[rng.integers(rows, size=count // 2)]
    near = near + rng.normal(size=near.shape).astype(np.float32) * NOISE / np.sqrt(dimension)
    pairs = vectors[rng.integers(rows, size=(count - count // 2, 2))]
    between = pairs.sum(axis=1)
    queries = np.concatenate([near, between]).astype(np.float32)
    queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    return queries


def exact_top(vectors: FloatArray, queries: FloatArray, k: int) -> npt.NDArray[np.int64]:
    """Row positions of each query's ``k`` best rows (unordered), by inner product."""
    tops = []
    for start in range(0, len(queries), BATCH):
        scores = queries[start : start + BATCH] @ vectors.T
        tops.append(np.argpartition(-scores, k - 1, axis=1)[:, :k])
    return np.concatenate(tops).astype(np.int64)


def recall_at(
    index: Any, queries: FloatArray, truth: npt.NDArray[np.int64], ef: int, threads: int
) -> float:
    """Share of the exact neighbours (as labels) the graph finds at ``ef``."""
    index.set_ef(ef)
    try:
        labels, _ = index.knn_query(queries, k=truth.shape[1], num_threads=threads)
    except RuntimeError:  # fewer than k reachable: as bad as a graph gets
        return 0.0
    found = sum(
        np.intersect1d(got, want, assume_unique=True).size
        for got, want in zip(labels.astype(np.int64), truth, strict=True)
    )
    return found / truth.size


def calibrate(
    index: Any,
    vectors: FloatArray,
    labels: npt.NDArray[np.int64],
    ladder: tuple[int, ...],
    bar: float,
    threads: int = 1,
) -> Calibration:
    """Measure ``index`` (an hnswlib graph over ``vectors`` labelled ``labels``) up the
    ``ladder`` of ef until recall@10 reaches ``bar``; leaves the graph at the chosen ef."""
    began = time.perf_counter()
    queries = sample_queries(vectors, QUERIES)
    truth = labels[exact_top(vectors, queries, min(TOP, len(vectors)))]
    recall = 0.0
    for ef in ladder:
        recall = recall_at(index, queries, truth, ef, threads)
        if recall >= bar:
            return Calibration(ef, round(recall, 4), time.perf_counter() - began)
    return Calibration(None, round(recall, 4), time.perf_counter() - began)
