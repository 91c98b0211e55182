r"""Keyword search in memory: BM25 over postings held next to the vector matrix.

The embedded index once ranked with an FTS5 table (``bm25(chunks_fts, 2, 1, 1)``), whose cost
per query grows with the corpus. This module keeps FTS5's formula, with its own terms:

- Tokens are maximal runs of letters and digits (``[^\W_]+``) after NFKD normalisation with
  combining marks removed and lower-casing: "Café" and "cafe" are one token, an underscore
  splits.
- Terms are tokens stemmed by the Porter stemmer (PyStemmer's ``porter``); as in Porter's own
  implementation, tokens of one or two characters are kept as they are.
- A chunk's term frequency is ``sum(weight[c] * hits in column c)`` over title, heading and
  text (``BM25_WEIGHTS``); its length is the unweighted token count of all three.
- ``score`` is FTS5's formula: per query word, ``idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b *
  dl / avgdl))`` with ``idf = log((N - n + 0.5) / (n + 0.5))`` floored at 1e-6, over live rows.

Postings are immutable ``Segment`` objects (a small inverted index over a range of row
positions); a new generation appends one and merges the smaller tail segments, so readers of
an older snapshot are never disturbed. ``tests/unit/test_local_bm25.py`` holds the scores to a
real FTS5 table's ``bm25()``.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import Stemmer

from datatorag.domain.keywords import BM25_WEIGHTS, content_words

K1 = 1.2
B = 0.75
IDF_FLOOR = 1e-6  # FTS5's floor for words in more than half the rows
MERGE_RATIO = 2  # the last segment merges into the one before unless that is this many times larger

# One posting as stored in ``chunk_terms.postings``: a term id and its weighted frequency.
POSTING = np.dtype([("term", "<i4"), ("tf", "<u2")])
MAX_TF = np.iinfo(np.uint16).max

IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]


def _check_weights(weights: Sequence[float]) -> tuple[int, ...]:
    """Integral weights: stored frequencies stay exact small integers."""
    if any(w != int(w) or w < 1 for w in weights):
        raise ValueError(f"BM25 column weights must be positive integers, not {weights}")
    return tuple(int(w) for w in weights)


# -- tokens ------------------------------------------------------------------------------------

_ASCII_TOKEN = re.compile(r"[0-9a-z]+")
_TOKEN = re.compile(r"[^\W_]+")
MAX_CACHED_STEMS = 1 << 17  # words whose stems are kept (about 20 MB at most)


def _is_mark(c: str) -> bool:
    return unicodedata.category(c)[0] == "M"


# Combining marks are removed, not treated as separators (no mark is a letter or a digit), so
# that one never splits a word. Those of the Basic Multilingual Plane make one fast pattern;
# the others are rare (historic scripts, musical notation) and found character by character.
_MARKS = re.compile("[" + "".join(filter(_is_mark, map(chr, range(0x10000)))) + "]+")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]+")


def _without_marks(found: re.Match[str]) -> str:
    return "".join(c for c in found.group() if not _is_mark(c))


def tokenize(text: str) -> list[str]:
    """The tokens of ``text``: runs of letters and digits, without diacritics, lower-cased."""
    if text.isascii():
        return _ASCII_TOKEN.findall(text.lower())
    folded = _MARKS.sub("", unicodedata.normalize("NFKD", text))
    return _TOKEN.findall(_ASTRAL.sub(_without_marks, folded).lower())


class _Stems:
    """Stems by word. A ``Stemmer`` must not be called concurrently (it has state), so misses
    are stemmed under a lock; hits are dictionary reads, twice as fast as PyStemmer's own
    cache. When full, the dictionary is replaced, never emptied: a concurrent reader keeps
    the one it holds."""

    def __init__(self) -> None:
        self._stemmer = Stemmer.Stemmer("porter", 0)  # 0: no cache of its own
        self._lock = threading.Lock()
        self._known: dict[str, str] = {}

    def __call__(self, words: Sequence[str]) -> list[str]:
        known = self._known
        try:
            return [known[w] for w in words]
        except KeyError:
            pass
        missing = list(dict.fromkeys(w for w in words if w not in known))
        with self._lock:
            stemmed: list[str] = self._stemmer.stemWords(missing)
        # As in Porter's own implementation (not Snowball's), words of one or two letters stay:
        # "us" is not "u", "s" not "".
        found = {w: w if len(w) < 3 else s for w, s in zip(missing, stemmed, strict=True)}
        if len(self._known) + len(found) > MAX_CACHED_STEMS:
            self._known = {}
        self._known.update(found)
        return [found[w] if w in found else known[w] for w in words]


stems = _Stems()


def terms(text: str) -> list[str]:
    return stems(tokenize(text))


def query_words(query: str) -> list[str]:
    """The distinct words of ``query`` a keyword search looks for, before stemming.

    Stop words are dropped unless nothing else is left; every other word counts (one "phrase"
    each, as the quoted words of the former FTS5 OR query), up to ``MAX_QUERY_TERMS``.
    """
    return content_words(tokenize(query))


def query_terms(query: str) -> list[str]:
    """The stems of ``query_words``, one per word: two words with one stem count twice."""
    return stems(query_words(query))


def column_counts(text: str) -> tuple[int, Counter[str]]:
    """The token count of one column and how often each term occurs in it."""
    found = terms(text)
    return len(found), Counter(found)


def weigh(columns: Sequence[tuple[int, Counter[str]]]) -> tuple[int, dict[str, int]]:
    """A chunk's length and weighted term frequencies from its columns' counts, in the order
    title, heading, text."""
    weights = _check_weights(BM25_WEIGHTS)
    if len(columns) != len(weights):
        raise ValueError(f"expected {len(weights)} columns, got {len(columns)}")
    frequencies: Counter[str] = Counter()
    for weight, (_, counts) in zip(weights, columns, strict=True):
        for term, count in counts.items():
            frequencies[term] += weight * count
    return sum(length for length, _ in columns), dict(frequencies)


def encode(term_ids: Sequence[int], frequencies: Sequence[int]) -> bytes:
    """A chunk's postings as stored: ``POSTING`` records (a frequency saturates at 65535)."""
    records = np.empty(len(term_ids), POSTING)
    records["term"] = term_ids
    records["tf"] = np.minimum(np.asarray(frequencies, np.int64), MAX_TF)
    return records.tobytes()


# -- postings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """An inverted index over some row positions: the postings of ``terms[i]`` are
    ``rows[starts[i]:starts[i + 1]]`` (ascending) with frequencies ``tfs[...]``."""

    terms: IntArray  # ascending, distinct
    starts: npt.NDArray[np.int64]
    rows: IntArray
    tfs: npt.NDArray[np.uint16]

    @classmethod
    def build(cls, rows: IntArray, term_ids: IntArray, tfs: npt.NDArray[np.uint16]) -> Segment:
        """From postings whose rows ascend within each term once stably sorted by term: in row
        order, or runs already ordered by term whose rows follow the previous run's."""
        order = np.argsort(term_ids, kind="stable")  # timsort: sorted runs merge in linear time
        by_term = term_ids[order]
        new_term = np.empty(by_term.shape[0], np.bool_)
        new_term[:1] = True
        np.not_equal(by_term[1:], by_term[:-1], out=new_term[1:])
        firsts = np.flatnonzero(new_term)
        return cls(
            terms=by_term[firsts],
            starts=np.append(firsts, by_term.shape[0]).astype(np.int64),
            rows=rows[order],
            tfs=tfs[order],
        )

    @property
    def size(self) -> int:
        return int(self.rows.shape[0])

    @property
    def nbytes(self) -> int:
        return self.terms.nbytes + self.starts.nbytes + self.rows.nbytes + self.tfs.nbytes

    def postings(self) -> tuple[IntArray, IntArray, npt.NDArray[np.uint16]]:
        """Rows, term ids and frequencies, ordered by term then row."""
        return self.rows, np.repeat(self.terms, np.diff(self.starts)), self.tfs

    def select(self, keep: npt.NDArray[np.bool_], renumber: IntArray) -> Segment:
        """The postings of rows where ``keep`` is true, row ``r`` renamed ``renumber[r]`` (an
        increasing map, so rows still ascend within each term: no sort needed)."""
        kept = keep[self.rows]
        before = np.concatenate([[0], np.cumsum(kept)])
        counts = before[self.starts[1:]] - before[self.starts[:-1]]
        present = counts > 0
        return Segment(
            terms=self.terms[present],
            starts=np.concatenate([[0], np.cumsum(counts[present])]).astype(np.int64),
            rows=renumber[self.rows[kept]],
            tfs=self.tfs[kept],
        )

    def find(self, term_id: int) -> slice | None:
        i = int(np.searchsorted(self.terms, term_id))
        if i == self.terms.shape[0] or self.terms[i] != term_id:
            return None
        return slice(int(self.starts[i]), int(self.starts[i + 1]))


def decode(first: int, blobs: Sequence[bytes]) -> tuple[IntArray, IntArray, npt.NDArray[np.uint16]]:
    """Rows, term ids and frequencies of stored chunks; ``blobs[i]`` is row ``first + i``."""
    records = np.frombuffer(b"".join(blobs), POSTING)
    counts = np.fromiter((len(b) // POSTING.itemsize for b in blobs), np.int64, len(blobs))
    rows = np.repeat(np.arange(first, first + len(blobs), dtype=np.int32), counts)
    return rows, records["term"].astype(np.int32), records["tf"].copy()


@dataclass(frozen=True)
class Postings:
    """All segments of a snapshot, oldest (lowest rows) first."""

    segments: tuple[Segment, ...] = ()

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.segments)

    def append(self, segment: Segment) -> Postings:
        """With ``segment`` (rows after all others) added; small tail segments are merged so
        that a query visits O(log rows) segments."""
        segments = [*self.segments, segment]
        while len(segments) > 1 and segments[-2].size < MERGE_RATIO * segments[-1].size:
            last = segments.pop()
            segments[-1] = _merge([segments[-1], last])
        return Postings(tuple(segments))

    def compact(self, keep: npt.NDArray[np.bool_]) -> Postings:
        """The rows where ``keep`` is true, renumbered ``0..keep.sum()-1``."""
        renumber = (np.cumsum(keep) - 1).astype(np.int32)
        kept = (s.select(keep, renumber) for s in self.segments)
        return Postings(tuple(s for s in kept if s.size))

    def gather(self, term_id: int) -> tuple[IntArray, npt.NDArray[np.uint16]]:
        rows, tfs = [], []
        for segment in self.segments:
            found = segment.find(term_id)
            if found is not None:
                rows.append(segment.rows[found])
                tfs.append(segment.tfs[found])
        if len(rows) == 1:
            return rows[0], tfs[0]
        if not rows:
            return np.zeros(0, np.int32), np.zeros(0, np.uint16)
        return np.concatenate(rows), np.concatenate(tfs)


def _merge(segments: Sequence[Segment]) -> Segment:
    """One segment from segments in row order (each ordered by term, then row)."""
    parts = [s.postings() for s in segments]
    return Segment.build(*(np.concatenate(column) for column in zip(*parts, strict=True)))


# -- ranking -----------------------------------------------------------------------------------


def length_norms(lengths: IntArray, live_tokens: int, live_rows: int) -> FloatArray:
    """``k1 * (1 - b + b * dl / avgdl)`` of every row: the length part of the BM25 denominator."""
    avgdl = live_tokens / live_rows if live_rows else 1.0
    # The operations and their order are those of fts5Bm25Function (the same rounding).
    norms = K1 * ((1 - B) + (B * lengths.astype(np.float64)) / avgdl)
    return norms.astype(np.float64, copy=False)


def score(
    postings: Postings,
    norms: FloatArray,
    alive: npt.NDArray[np.bool_] | None,
    live_rows: int,
    term_ids: Sequence[int | None],
) -> FloatArray:
    """FTS5 ``-bm25()`` of every row (0 where no word matches). ``norms`` come from
    ``length_norms``; ``term_ids`` has one entry per query word (None: a word no chunk has);
    ``alive`` is None when every row is alive."""
    size = norms.shape[0]
    matched_rows, contributions = [], []
    for term_id in term_ids:
        if term_id is None:
            continue
        rows, tfs = postings.gather(term_id)
        if alive is not None:
            live = alive[rows]
            rows, tfs = rows[live], tfs[live]
        if not rows.shape[0]:
            continue
        hits = rows.shape[0]
        idf = math.log((live_rows - hits + 0.5) / (hits + 0.5))
        idf = idf if idf > 0.0 else IDF_FLOOR
        tf = tfs.astype(np.float64)
        matched_rows.append(rows)
        contributions.append(idf * ((tf * (K1 + 1.0)) / (tf + norms[rows])))
    if not matched_rows:
        return np.zeros(size, np.float64)
    # bincount adds in input order: per row, the words' contributions in query order, as FTS5.
    scores = np.bincount(
        np.concatenate(matched_rows), np.concatenate(contributions), minlength=size
    )
    return scores.astype(np.float64, copy=False)


def best(
    scores: FloatArray, allowed: npt.NDArray[np.bool_] | None, top_k: int
) -> tuple[IntArray, FloatArray]:
    """Positions and scores of the ``top_k`` best matching rows among ``allowed``, by score
    descending then position ascending (positions ascend with chunk row ids)."""
    matched = scores > 0
    if allowed is not None:
        matched &= allowed
    candidates = np.flatnonzero(matched)
    k = min(top_k, candidates.shape[0])
    if k == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.float64)
    values = scores[candidates]
    if k < values.shape[0]:
        kth = np.partition(values, values.shape[0] - k)[values.shape[0] - k]
        candidates = candidates[values >= kth]  # every row tied with the k-th, for the order
        values = scores[candidates]
    order = np.lexsort((candidates, -values))[:k]
    return candidates[order].astype(np.int32), values[order]
