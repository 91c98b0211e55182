"""A tenant's chunks in memory: unit vectors as one float32 matrix and BM25 postings beside it.

Every transaction that changes chunks bumps the file's ``generation``; a reader holding an older
snapshot catches up incrementally (chunk ids only grow, and deleted ids are logged in
``chunk_tombstones``), so a document swap costs readers a few rows, not a reload. A snapshot is
never mutated once published: threads still ranking an older one are undisturbed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from datatorag.adapters.index.sqlite import bm25
from datatorag.adapters.index.sqlite.ann import GraphSlot
from datatorag.domain.filters import DocAttrs, Filter
from datatorag.domain.vectors import FloatArray

MASK_CACHE_SIZE = 32  # filter masks kept per snapshot (the same filter tends to repeat)
# Memory per row of a snapshot's own (not its buffers'): alive flag, length norm, and a byte in
# each cached filter mask.
ROW_BYTES = 1 + 8 + MASK_CACHE_SIZE
DOC_BYTES = 1024  # a document's attributes as Python objects (ids, metadata): an estimate


@dataclass(frozen=True)
class Snapshot:
    """One generation of a tenant's vectors and postings, as a reader sees it. Never mutated
    once published.

    The arrays are growable buffers of which the first ``size`` rows belong to this snapshot;
    the snapshot that follows may append rows after ``size`` but never writes below it, so
    threads still scoring an older snapshot are undisturbed. Postings are immutable segments
    addressed by the same row positions.
    """

    epoch: int  # random id of the database file: generations of a recreated file start over
    generation: int
    size: int
    vectors: FloatArray  # (capacity, dimension) unit rows
    ids: npt.NDArray[np.int64]  # chunk row ids, ascending
    doc_codes: npt.NDArray[np.int32]  # index into ``docs``
    lengths: npt.NDArray[np.int32]  # tokens in each chunk (title, heading and text)
    postings: bm25.Postings
    alive: npt.NDArray[np.bool_]  # (size,), False once the chunk is deleted
    dead: int
    live_tokens: int  # tokens in the live chunks
    docs: list[DocAttrs]
    codes: dict[str, int]  # doc_id -> doc code
    masks: dict[Filter, npt.NDArray[np.bool_]] = field(default_factory=dict, compare=False)
    norms: list[bm25.FloatArray] = field(default_factory=list, compare=False)  # computed once
    # The tenant's ANN graph (large tenants only): shared along one file's generations.
    graphs: GraphSlot = field(default_factory=GraphSlot, compare=False)

    @property
    def matrix(self) -> FloatArray:
        return self.vectors[: self.size]

    @property
    def rowids(self) -> npt.NDArray[np.int64]:
        return self.ids[: self.size]

    @property
    def length_norms(self) -> bm25.FloatArray:
        """The length part of each row's BM25 denominator (it depends on the average)."""
        if not self.norms:
            lengths = self.lengths[: self.size]
            self.norms.append(bm25.length_norms(lengths, self.live_tokens, self.size - self.dead))
        return self.norms[0]

    @property
    def nbytes(self) -> int:
        """About the memory this snapshot holds (what the snapshot cache budgets): its buffers
        whole, headroom included."""
        buffers = self.vectors.nbytes + self.ids.nbytes + self.doc_codes.nbytes
        buffers += self.lengths.nbytes + self.postings.nbytes + self.graphs.nbytes
        return int(buffers) + self.size * ROW_BYTES + len(self.docs) * DOC_BYTES

    @property
    def max_rowid(self) -> int:
        return int(self.ids[self.size - 1]) if self.size else 0

    def allowed(self, where: Filter) -> npt.NDArray[np.bool_]:
        """Rows that are alive and pass ``where``: the filter is evaluated once per document."""
        if not where.conditions:
            return self.alive
        mask = self.masks.get(where)
        if mask is None:
            by_doc = np.fromiter((where.matches(d) for d in self.docs), np.bool_, len(self.docs))
            mask = by_doc[self.doc_codes[: self.size]] & self.alive
            if len(self.masks) >= MASK_CACHE_SIZE:
                self.masks.clear()
            self.masks[where] = mask
        return mask


def empty_snapshot(epoch: int) -> Snapshot:
    return Snapshot(
        epoch=epoch,
        generation=0,
        size=0,
        vectors=np.zeros((0, 0), np.float32),
        ids=np.zeros(0, np.int64),
        doc_codes=np.zeros(0, np.int32),
        lengths=np.zeros(0, np.int32),
        postings=bm25.Postings(),
        alive=np.zeros(0, np.bool_),
        dead=0,
        live_tokens=0,
        docs=[],
        codes={},
    )


# What a snapshot reads of each new chunk: _append and _doc_code index these columns.
_LOAD_COLUMNS = (
    "c.id, c.doc_id, v.vector, c.source_id, c.media_type, c.metadata, t.length, t.postings"
)


def catch_up(base: Snapshot, conn: sqlite3.Connection, generation: int) -> Snapshot:
    """``base`` advanced to ``generation``, read inside the caller's read transaction."""
    alive, dead, live_tokens = base.alive.copy(), base.dead, base.live_tokens
    if base.size:
        deleted = np.fromiter(
            (
                r
                for (r,) in conn.execute(
                    "SELECT chunk_rowid FROM chunk_tombstones "
                    "WHERE generation > ? AND chunk_rowid <= ?",
                    (base.generation, base.max_rowid),
                )
            ),
            np.int64,
        )
        positions = np.searchsorted(base.rowids, deleted)
        inside = positions < base.size
        positions = positions[inside][base.rowids[positions[inside]] == deleted[inside]]
        positions = positions[alive[positions]]  # newly deleted
        dead += positions.shape[0]
        live_tokens -= int(base.lengths[positions].sum())
        alive[positions] = False
    rows = conn.execute(
        f"SELECT {_LOAD_COLUMNS} FROM chunks c JOIN chunk_vectors v ON v.id = c.id "  # noqa: S608
        "JOIN chunk_terms t ON t.id = c.id WHERE c.id > ? ORDER BY c.id",
        (base.max_rowid,),
    ).fetchall()
    snapshot = _append(
        replace(base, alive=alive, dead=dead, live_tokens=live_tokens, masks={}, norms=[]),
        rows,
        generation,
    )
    if snapshot.dead > max(1024, snapshot.size // 4):
        snapshot = _compact(snapshot)
    return snapshot


def _append(base: Snapshot, rows: list[Any], generation: int) -> Snapshot:
    """``base`` (with its tombstones applied) plus ``rows``, at ``generation``."""
    if not rows:
        return replace(base, generation=generation)
    n, k = base.size, len(rows)
    dimension = len(rows[0][2]) // 4
    vectors, ids, codes, lengths = base.vectors, base.ids, base.doc_codes, base.lengths
    if n + k > ids.shape[0] or vectors.shape[1] != dimension:
        # A full load takes what it needs; a tenant that changes gets headroom for its swaps.
        # (Not a constant: "untouched rows stay unmapped" holds only for fresh pages, and an
        # allocator that reuses freed memory hands out touched ones.)
        capacity = n + k if n == 0 else (n + k) * 3 // 2
        vectors = _grow(vectors[:n], (capacity, dimension))
        ids, codes = _grow(ids[:n], (capacity,)), _grow(codes[:n], (capacity,))
        lengths = _grow(lengths[:n], (capacity,))
    vectors[n : n + k] = np.frombuffer(b"".join(r[2] for r in rows), np.float32).reshape(
        k, dimension
    )
    ids[n : n + k] = [r[0] for r in rows]
    lengths[n : n + k] = [r[6] for r in rows]
    docs, code_of, fresh = list(base.docs), dict(base.codes), set[str]()
    codes[n : n + k] = [_doc_code(r, docs, code_of, fresh) for r in rows]
    segment = bm25.Segment.build(*bm25.decode(n, [r[7] for r in rows]))
    return Snapshot(
        epoch=base.epoch,
        generation=generation,
        size=n + k,
        vectors=vectors,
        ids=ids,
        doc_codes=codes,
        lengths=lengths,
        postings=base.postings.append(segment),
        alive=np.concatenate([base.alive, np.ones(k, np.bool_)]),
        dead=base.dead,
        live_tokens=base.live_tokens + int(lengths[n : n + k].sum()),
        docs=docs,
        codes=code_of,
        graphs=base.graphs,
    )


def _doc_code(
    row: Sequence[Any], docs: list[DocAttrs], codes: dict[str, int], fresh: set[str]
) -> int:
    """The document's code; its attributes come from its newest chunks (read first in a batch)."""
    doc_id, source_id, media_type, metadata = row[1], row[3], row[4], row[5]
    code = codes.get(doc_id)
    if code is None:
        code = codes[doc_id] = len(docs)
        docs.append(DocAttrs(doc_id, source_id, media_type, {}))
    if doc_id not in fresh:
        # All of a document's live rows in one batch come from its latest swap.
        fresh.add(doc_id)
        docs[code] = DocAttrs(doc_id, source_id, media_type, json.loads(metadata))
    return code


_A = TypeVar("_A", bound=np.generic)


def _grow(array: npt.NDArray[_A], shape: tuple[int, ...]) -> npt.NDArray[_A]:
    grown = np.zeros(shape, array.dtype)
    if array.size:
        grown[: array.shape[0]] = array
    return grown


def _compact(snapshot: Snapshot) -> Snapshot:
    keep = snapshot.alive
    return Snapshot(
        epoch=snapshot.epoch,
        generation=snapshot.generation,
        size=int(keep.sum()),
        vectors=np.ascontiguousarray(snapshot.matrix[keep]),
        ids=snapshot.rowids[keep].copy(),
        doc_codes=snapshot.doc_codes[: snapshot.size][keep].copy(),
        lengths=snapshot.lengths[: snapshot.size][keep].copy(),
        postings=snapshot.postings.compact(keep),
        alive=np.ones(int(keep.sum()), np.bool_),
        dead=0,
        live_tokens=snapshot.live_tokens,
        docs=snapshot.docs,
        codes=snapshot.codes,
        graphs=snapshot.graphs,  # its labels are row ids, which compaction keeps
    )


def vector_top_k(
    snapshot: Snapshot, query: FloatArray, top_k: int, where: Filter
) -> tuple[list[int], list[float]]:
    """Row ids and cosine scores of the best ``top_k`` rows that pass the filter, exactly."""
    # einsum, not matmul: OpenBLAS would spread this memory-bound product over threads, which on
    # a small busy machine costs more than it saves (12 ms instead of 0.2 ms for 2k rows).
    if where.conditions or snapshot.dead:
        candidates = np.flatnonzero(snapshot.allowed(where))
        if candidates.shape[0] < snapshot.size // 4:  # a selective filter: score its rows only
            scores = np.einsum("ij,j->i", snapshot.matrix[candidates], query)
        else:
            scores = np.einsum("ij,j->i", snapshot.matrix, query)[candidates]
    else:
        candidates = np.arange(snapshot.size)
        scores = np.einsum("ij,j->i", snapshot.matrix, query)
    k = min(top_k, candidates.shape[0])
    if k == 0:
        return [], []
    best = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(k)
    best = best[np.argsort(-scores[best], kind="stable")]
    return snapshot.rowids[candidates[best]].tolist(), scores[best].tolist()


def keyword_top_k(
    snapshot: Snapshot, term_ids: Sequence[int | None], top_k: int, where: Filter
) -> tuple[list[int], list[float]]:
    """Row ids and BM25 scores of the best ``top_k`` rows that match and pass the filter."""
    scores = bm25.score(
        snapshot.postings,
        snapshot.length_norms,
        snapshot.alive if snapshot.dead else None,  # dead rows score 0: never candidates
        snapshot.size - snapshot.dead,
        term_ids,
    )
    allowed = snapshot.allowed(where) if where.conditions else None
    positions, values = bm25.best(scores, allowed, top_k)
    return snapshot.rowids[positions].tolist(), values.tolist()
