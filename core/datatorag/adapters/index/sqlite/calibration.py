"""Whether an HNSW graph answers well enough to be served, and with which ``ef``.

HNSW has no guarantee: on some data (clusters of near-copies larger than a node's links) the
search enters the wrong region and cannot leave it, and no ``ef`` helps (docs/benchmarks.md,
"Approximate vector search"). So each graph is measured once, where it is built (in the
background): its top 10 for queries drawn from the tenant's own vectors against exact search
over the same rows. Half the queries are a stored vector moved by isotropic noise, half the
normalised mean of two random stored vectors: questions fall near passages, or between them.
The smallest ``ef`` of the ladder whose recall@10 reaches the bar is served; when none does the
tenant is searched exactly. A neighbour found counts if it scores within ``EPSILON`` of the exact
10th (ann-benchmarks' recall): among near-ties which one comes back does not matter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from datatorag.domain.vectors import FloatArray

TOP = 10  # recall@10: what a search's first page needs
QUERIES = 200  # recall over 2,000 neighbours: about +-0.005 at 0.95
NOISE = 0.9  # norm of a query's isotropic noise (its best cosine falls near a question's)
BATCH = 64  # queries scored exactly at once (a batch of 64 over 118k rows: 30 MB)
EPSILON = 1e-3  # ann-benchmarks' tolerance on the k-th distance


@dataclass(frozen=True)
class Calibration:
    ef: int | None  # the smallest ef reaching the bar; None: none did, search exactly
    recall: float  # recall@10 at ``ef`` (when None, at the ladder's largest)
    seconds: float


def sample_queries(vectors: FloatArray, count: int, seed: int = 0) -> FloatArray:
    """``count`` unit queries, each a random row drawn 40% of the way to another random row and
    moved by noise: a question between two passages. On the corpus's real embeddings
    (bench/ann.py) the graph's recall on these runs about one ef step behind its recall on the
    dev questions: a cautious stand-in for them."""
    rng = np.random.default_rng(seed)
    rows, dimension = vectors.shape
    first, second = vectors[rng.integers(rows, size=count)], vectors[rng.integers(rows, size=count)]
    noise = rng.normal(size=(count, dimension)).astype(np.float32) * NOISE / np.sqrt(dimension)
    queries: FloatArray = (0.6 * first + 0.4 * second + noise).astype(np.float32)
    queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    return queries


def kth_scores(vectors: FloatArray, queries: FloatArray, k: int) -> FloatArray:
    """Each query's ``k``-th best inner product over ``vectors`` (exact)."""
    kth = []
    for start in range(0, len(queries), BATCH):
        # einsum, not matmul: OpenBLAS would spread this over threads, which on a busy host
        # costs more than it saves and takes the cores searches need (snapshot.py does too).
        scores = np.einsum("qd,nd->qn", queries[start : start + BATCH], vectors)
        kth.append(-np.partition(-scores, k - 1, axis=1)[:, k - 1])
    return np.concatenate(kth)


def recall_at(
    index: Any, queries: FloatArray, kth: FloatArray, k: int, ef: int, threads: int
) -> float:
    """Share of the ``k`` neighbours the graph returns at ``ef`` that score at least the exact
    ``k``-th (less ``EPSILON``): its recall@k."""
    index.set_ef(ef)
    try:
        _, distances = index.knn_query(queries, k=k, num_threads=threads)
    except RuntimeError:  # fewer than k reachable: as bad as a graph gets
        return 0.0
    scores = 1.0 - distances  # hnswlib's "ip" distance is 1 - inner product
    return float(np.mean(scores >= kth[:, None] - EPSILON))


def calibrate(
    index: Any, vectors: FloatArray, ladder: tuple[int, ...], bar: float, threads: int = 1
) -> Calibration:
    """Measure ``index`` (an hnswlib graph over ``vectors``) up the ``ladder`` of ef until
    recall@10 reaches ``bar``; leaves the graph at the last ef tried."""
    began = time.perf_counter()
    queries = sample_queries(vectors, QUERIES)
    k = min(TOP, len(vectors))
    kth = kth_scores(vectors, queries, k)
    recall = 0.0
    for ef in ladder:
        recall = recall_at(index, queries, kth, k, ef, threads)
        if recall >= bar:
            return Calibration(ef, round(recall, 4), time.perf_counter() - began)
    return Calibration(None, round(recall, 4), time.perf_counter() - began)
