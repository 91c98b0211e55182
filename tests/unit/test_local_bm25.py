"""The in-memory BM25 against a real SQLite FTS5 table.

The embedded index ranked keyword queries with FTS5 (``bm25(t, 2, 1, 1)``) before ``bm25.py``
replaced it. FTS5's ``bm25()`` stays the reference for the scores: these tests give an FTS5
table our terms (stemmed text, split on spaces by its ``ascii`` tokenizer), so only the
ranking is compared, over the real corpus; tokens and stems are compared with FTS5's
``porter unicode61`` on their own, where the known differences are spelled out.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from datatorag.adapters.index.sqlite import SqliteSearchIndex, bm25
from datatorag.domain.keywords import MAX_QUERY_TERMS
from datatorag.domain.models import DocumentRecord, IndexedChunk

pytestmark = pytest.mark.unit

FTS5_WEIGHTS = "2.0, 1.0, 1.0"  # title, heading, text, as the FTS5 index ranked
TENANT = "acme"


def fts5(db: sqlite3.Connection, name: str, tokenizer: str, columns: str = "x") -> None:
    db.execute(f"CREATE VIRTUAL TABLE {name} USING fts5({columns}, tokenize='{tokenizer}')")


def fts5_tokens(texts: Sequence[str], tokenizer: str) -> list[list[str]]:
    """What FTS5 stores for each text, token by token (fts5vocab ``instance``)."""
    with sqlite3.connect(":memory:") as db:
        fts5(db, "t", tokenizer)
        db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
        db.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)", enumerate(texts))
        found: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for term, row, offset in db.execute("SELECT term, doc, offset FROM v"):
            found[row].append((offset, term))
    db.close()
    return [[term for _, term in sorted(found[i])] for i in range(len(texts))]


@pytest.fixture(scope="module")
def corpus_texts(corpus_dir: Path) -> list[str]:
    texts = [p.read_text() for p in sorted((corpus_dir / "docs").rglob("*.md"))]
    return [*texts, (corpus_dir / "questions-dev.jsonl").read_text()]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        # Diacritics go, as separate marks or composed: İ, Ǽ and ΐ decompose.
        ("Café naïve x\u0301y İstanbul Ǽsop ΐ", ["cafe", "naive", "xy", "istanbul", "æsop", "ι"]),  # noqa: RUF001
        ("straße Ærø", ["straße", "ærø"]),  # letters without a decomposition stay
        ("snake_case __init__ a_1", ["snake", "case", "init", "a", "1"]),
        ("401(k) 2024-01-01 A1b2 3.5%", ["401", "k", "2024", "01", "01", "a1b2", "3", "5"]),
        # Compatibility forms: fractions, superscripts, numerals, ligatures, full width, long s.
        (
            "½ x² Ⅻ ǅemal ﬁle Ｆｕｌｌ-ｗｉｄｔｈ ſoft",  # noqa: RUF001
            ["1", "2", "x2", "xii", "dzemal", "file", "full", "width", "soft"],
        ),
        ("🤩wow PTO🏖 — “quoted” x\U000e0100y 𝄞", ["wow", "pto", "quoted", "xy"]),  # symbols split
        ("हिन्दी ไทย", ["हनद", "ไทย"]),  # vowel signs are marks: removed, never separators
    ],
)
def test_tokens_are_letters_and_digits_folded(text: str, tokens: list[str]) -> None:
    assert bm25.tokenize(text) == tokens


def test_ascii_text_takes_the_same_tokens_either_way(corpus_texts: list[str]) -> None:
    """ASCII text has a fast path; the Unicode one must agree with it."""
    ascii_texts = [t for t in corpus_texts if t.isascii()]
    assert ascii_texts
    for text in ascii_texts:
        assert bm25.tokenize(text + " é") == [*bm25.tokenize(text), "e"]


def test_tokens_are_those_of_fts5_unicode61_but_for_symbols(corpus_texts: list[str]) -> None:
    """FTS5 counted symbols (emoji) as token characters; letters and digits agree."""
    expected = fts5_tokens(corpus_texts, "unicode61 remove_diacritics 2")
    differing = 0
    for text, tokens in zip(corpus_texts, expected, strict=True):
        without_symbols = [t for t in ("".join(filter(str.isalnum, t)) for t in tokens) if t]
        assert bm25.tokenize(text) == without_symbols
        differing += bm25.tokenize(text) != tokens
    assert 0 < differing < len(corpus_texts) // 10


def test_stems_are_porters(corpus_texts: list[str]) -> None:
    """FTS5's Porter departs from the published one on -logy and -bly (it drops the i) and
    leaves tokens over 64 bytes alone; otherwise the stems agree."""
    words = sorted({t for text in corpus_texts for t in bm25.tokenize(text)})
    theirs = [s[0] for s in fts5_tokens(words, "porter unicode61 remove_diacritics 2")]
    ours = bm25.stems(words)
    differ = [(w, o, t) for w, o, t in zip(words, ours, theirs, strict=True) if o != t]
    assert len(differ) < len(words) // 500
    for word, our, their in differ:
        assert our == their + "i" or len(word.encode()) > 64, (word, our, their)
    assert bm25.stems(["leaves", "policies", "technology", "flexibly", "us", "s"]) == [
        "leav",
        "polici",
        "technologi",
        "flexibli",
        "us",  # one or two letters: kept
        "s",
    ]


def test_stems_survive_a_full_cache_and_threads(
    corpus_texts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    words = [t for text in corpus_texts[:20] for t in bm25.tokenize(text)]
    known = dict(zip(words, bm25.stems(words), strict=True))
    parts = [words[start : start + 100] for start in range(0, len(words), 100)]
    monkeypatch.setattr(bm25, "MAX_CACHED_STEMS", 50)
    stems = bm25._Stems()
    for part in parts:
        assert stems(part) == [known[w] for w in part]
        assert len(stems._known) <= 50 + 100  # emptied when full
    stems, results = bm25._Stems(), []

    def run(mine: list[list[str]]) -> None:
        results.extend((part, stems(part)) for part in mine)

    threads = [threading.Thread(target=run, args=(parts[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == len(parts) > 100
    for part, found in results:
        assert found == [known[w] for w in part]


def test_query_words_are_the_distinct_non_stop_words() -> None:
    assert bm25.query_words('Parental "leave" AND NEAR(x*') == ["parental", "leave", "near", "x"]
    assert bm25.query_words("the and of") == ["the", "and", "of"]  # only stop words: keep them
    assert bm25.query_words(" -*^() ") == []
    assert bm25.query_words("Leave LEAVE leave, Café cafe") == ["leave", "cafe"]
    many = " ".join(f"w{i}" for i in range(100))
    assert bm25.query_words(many) == [f"w{i}" for i in range(MAX_QUERY_TERMS)]
    assert bm25.query_terms("leaves leave") == ["leav", "leav"]  # two FTS5 phrases, one stem


# -- ranking -----------------------------------------------------------------------------------


def pieces(markdown: str, words: int = 120) -> Iterator[tuple[str, str]]:
    """(heading, text) pieces of a Markdown document: its sections cut into windows."""
    heading = ""
    for section in re.split(r"^(#{1,6} .*)$", markdown, flags=re.MULTILINE):
        if section.startswith("#"):
            heading = section.lstrip("#").strip()
            continue
        tokens = section.split()
        for start in range(0, len(tokens), words):
            yield heading, " ".join(tokens[start : start + words])


@pytest.fixture(scope="module")
def chunk_rows(corpus_dir: Path) -> list[tuple[str, str, str, str, str]]:
    """(doc id, source, title, heading, text) of every chunk of 21 documents."""
    manifest = json.loads((corpus_dir / "manifest.json").read_text())["documents"]
    rows = []
    for doc in manifest[::5]:
        markdown = (corpus_dir / doc["path"]).read_text()
        for heading, text in pieces(markdown):
            rows.append((doc["id"].replace("/", "-"), doc["source"], doc["title"], heading, text))
    return rows


def build_index(root: Path, rows: list[tuple[str, str, str, str, str]]) -> list[str]:
    """Indexes the chunks in order (row ids ascend with it); returns their chunk ids."""
    index = SqliteSearchIndex(root)
    rng = np.random.default_rng(1)
    by_doc: dict[str, list[tuple[str, str, str, str, str]]] = defaultdict(list)
    for row in rows:
        by_doc[row[0]].append(row)
    chunk_ids = []
    for doc_id, doc_rows in by_doc.items():
        _, source, title = doc_rows[0][:3]
        index.upsert_document(
            DocumentRecord(
                tenant=TENANT,
                doc_id=doc_id,
                source_id=source,
                source_uri=f"file:///{doc_id}.md",
                title=title,
                version="v1",
            )
        )
        chunks = [
            IndexedChunk(
                chunk_id=f"{doc_id}:v1:{i}",
                doc_id=doc_id,
                ordinal=i,
                heading=heading,
                text=text,
                vector=rng.normal(size=8).tolist(),
            )
            for i, (*_, heading, text) in enumerate(doc_rows)
        ]
        assert index.replace_chunks(TENANT, doc_id, "v1", chunks)
        chunk_ids += [c.chunk_id for c in chunks]
    index.close()
    return chunk_ids


def assert_same_ranking(ours: list[tuple[str, float]], reference: list[tuple[str, float]]) -> None:
    """Same ids in the same order and the same scores, but for float-rounding ties."""
    assert len(ours) == len(reference)
    for (_, score), (_, expected) in zip(ours, reference, strict=True):
        assert score == pytest.approx(expected, rel=1e-9)
    if [i for i, _ in ours] != [i for i, _ in reference]:
        # Only rows whose scores are equal within rounding may trade places.
        for (ours_id, score), (ref_id, _) in zip(ours, reference, strict=True):
            if ours_id != ref_id:
                tied = {i for i, s in reference if s == pytest.approx(score, rel=1e-9)}
                assert ours_id in tied and ref_id in tied, (ours, reference)


def stemmed(text: str) -> str:
    """``text`` as our terms, which FTS5's ``ascii`` tokenizer splits back on the spaces."""
    return " ".join(bm25.terms(text))


def fts5_reference(rows: list[tuple[str, str, str, str, str]]) -> sqlite3.Connection:
    """An FTS5 table of the chunks' terms, row ``i`` for chunk ``i``."""
    db = sqlite3.connect(":memory:")
    fts5(db, "ref", "ascii", "title, heading, text")
    columns = [tuple(stemmed(c) for c in row[2:]) for row in rows]
    db.executemany(
        "INSERT INTO ref (rowid, title, heading, text) VALUES (?, ?, ?, ?)",
        [(i, *c) for i, c in enumerate(columns)],
    )
    # FTS5 reads each column as the terms we count, or the comparison would prove nothing.
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(ref, instance)")
    found: dict[tuple[int, int], list[tuple[int, str]]] = defaultdict(list)
    for term, row, column, offset in db.execute("SELECT term, doc, col, offset FROM v"):
        found[row, ["title", "heading", "text"].index(column)].append((offset, term))
    for (row, column), terms in found.items():
        assert " ".join(t for _, t in sorted(terms)) == columns[row][column]
    assert sum(len(t) for t in found.values()) == sum(len(c.split()) for r in columns for c in r)
    return db


def fts5_top_10(
    db: sqlite3.Connection, chunk_ids: list[str], query: str, allowed: list[int] | None = None
) -> list[tuple[str, float]]:
    """FTS5's answer: the query's terms ORed, one phrase per word, ranked by bm25()."""
    match = " OR ".join(f'"{t}"' for t in bm25.query_terms(query))
    sql = (
        f"SELECT rowid, -bm25(ref, {FTS5_WEIGHTS}) AS score FROM ref WHERE ref MATCH ? "
        + ("AND rowid IN (SELECT value FROM json_each(?)) " if allowed is not None else "")
        + "ORDER BY score DESC, rowid LIMIT 10"
    )
    params = [match] if allowed is None else [match, json.dumps(allowed)]
    return [(chunk_ids[r], s) for r, s in db.execute(sql, params)]


def test_top_10_agrees_with_fts5_bm25(
    tmp_path: Path, corpus_dir: Path, chunk_rows: list[tuple[str, str, str, str, str]]
) -> None:
    """Every dev question, over 21 real documents, with deletes and a filter: the rows and
    scores of FTS5's ``bm25()`` with the weights the index uses (k1, b, the IDF floor and the
    length normalisation are FTS5's)."""
    chunk_ids = build_index(tmp_path / "index", chunk_rows)
    db = fts5_reference(chunk_rows)
    deleted = {chunk_rows[0][0], chunk_rows[-1][0]}  # two documents go
    db.execute(
        "DELETE FROM ref WHERE rowid IN (SELECT value FROM json_each(?))",
        (json.dumps([i for i, r in enumerate(chunk_rows) if r[0] in deleted]),),
    )
    sourcegraph = [i for i, r in enumerate(chunk_rows) if r[1] == "sourcegraph"]
    index = SqliteSearchIndex(tmp_path / "index")
    for doc_id in deleted:
        index.delete_document(TENANT, doc_id)
    questions = [
        json.loads(line)["question"]
        for line in (corpus_dir / "questions-dev.jsonl").read_text().splitlines()
        if line.strip()
    ]
    full = 0
    for question in questions:
        for filters, allowed in ((None, None), ({"source_id": "sourcegraph"}, sourcegraph)):
            reference = fts5_top_10(db, chunk_ids, question, allowed)
            hits = index.keyword_search(TENANT, question, 10, filters)
            assert_same_ranking([(h.chunk_id, h.score) for h in hits], reference)
            full += len(reference) == 10
    index.close()
    db.close()
    assert full >= len(questions)  # most queries fill their top 10


def test_words_in_most_chunks_get_the_fts5_idf_floor(tmp_path: Path) -> None:
    texts = ["common rare", "common", "common word common", "other", "leaves leave", "common"]
    rows = [("d", "s", "Policy", "", text) for text in texts]
    chunk_ids = build_index(tmp_path / "index", rows)
    db = fts5_reference(rows)
    index = SqliteSearchIndex(tmp_path / "index")
    for query in ["common", "common rare", "leave leaves", "word other common", "policy"]:
        hits = index.keyword_search(TENANT, query, 10)
        assert_same_ranking(
            [(h.chunk_id, h.score) for h in hits], fts5_top_10(db, chunk_ids, query)
        )
    assert 0 < index.keyword_search(TENANT, "common", 1)[0].score < 1e-5  # idf 1e-6
    index.close()
    db.close()


# -- postings ----------------------------------------------------------------------------------


def random_postings(
    rng: np.random.Generator, first: int, rows: int, vocabulary: int = 40
) -> tuple[bm25.IntArray, bm25.IntArray, npt.NDArray[np.uint16]]:
    blobs = []
    for _ in range(rows):
        terms = rng.choice(np.arange(1, vocabulary + 1), rng.integers(0, 8), replace=False)
        blobs.append(bm25.encode(terms.tolist(), rng.integers(1, 5, terms.shape[0]).tolist()))
    return bm25.decode(first, blobs)


def gathered(postings: bm25.Postings, term_id: int) -> list[tuple[int, int]]:
    rows, tfs = postings.gather(term_id)
    return list(zip(rows.tolist(), tfs.tolist(), strict=True))


def test_appended_segments_merge_and_answer_as_one() -> None:
    rng = np.random.default_rng(2)
    incremental, parts, first = bm25.Postings(), [], 0
    for size in [300, 5, 7, 1, 40, 3, 3, 0, 90, 2]:
        part = random_postings(rng, first, size)
        parts.append(part)
        incremental = incremental.append(bm25.Segment.build(*part))
        first += size
    whole = bm25.Postings(
        (bm25.Segment.build(*(np.concatenate(p) for p in zip(*parts, strict=True))),)
    )
    assert len(incremental.segments) < 6  # small tail segments were merged
    for term_id in range(0, 42):  # 0 and 41: no such term
        assert gathered(incremental, term_id) == gathered(whole, term_id)
        rows = [r for r, _ in gathered(whole, term_id)]
        assert rows == sorted(rows)


def test_compaction_renumbers_the_kept_rows() -> None:
    rng = np.random.default_rng(3)
    postings = bm25.Postings()
    for first, size in [(0, 50), (50, 20), (70, 5)]:
        postings = postings.append(bm25.Segment.build(*random_postings(rng, first, size)))
    assert [s.size > 0 for s in postings.segments] == [True, True, True]  # no merges here
    keep = rng.random(75) < 0.5
    keep[70:] = False  # the last segment empties: it goes
    new_row = np.cumsum(keep) - 1
    compacted = postings.compact(keep)
    assert len(compacted.segments) == 2
    for term_id in range(1, 41):
        expected = [(int(new_row[r]), tf) for r, tf in gathered(postings, term_id) if keep[r]]
        assert gathered(compacted, term_id) == expected


def test_frequencies_saturate_and_round_trip() -> None:
    rows, terms, tfs = bm25.decode(
        7, [bm25.encode([3, 9], [2, 70_000]), b"", bm25.encode([1], [1])]
    )
    assert rows.tolist() == [7, 7, 9]
    assert terms.tolist() == [3, 9, 1]
    assert tfs.tolist() == [2, 65_535, 1]


def test_weights_apply_to_frequencies_not_lengths() -> None:
    columns = [bm25.column_counts(t) for t in ("Leave policy", "Leaves", "Annual leave, policy")]
    length, frequencies = bm25.weigh(columns)
    assert length == 2 + 1 + 3
    assert frequencies == {"leav": 2 + 1 + 1, "polici": 2 + 1, "annual": 1}


def test_scores_and_order() -> None:
    """Rare words weigh more; ties rank by position; unknown words, dead and filtered rows
    never match."""
    blobs = [bm25.encode([1], [1]), bm25.encode([2], [1]), bm25.encode([1], [1]), b""]
    postings = bm25.Postings((bm25.Segment.build(*bm25.decode(0, blobs)),))
    lengths = np.array([3, 3, 3, 0], np.int32)
    norms = bm25.length_norms(lengths, 9, 4)
    assert not bm25.score(postings, norms, None, 4, [None, 5]).any()
    scores = bm25.score(postings, norms, None, 4, [1, 2])
    assert scores[1] > scores[0] == scores[2] > 0 == scores[3]  # "1" is in half the rows
    assert bm25.best(scores, None, 10)[0].tolist() == [1, 0, 2]
    assert bm25.best(scores, None, 2)[0].tolist() == [1, 0]
    allowed = np.array([True, False, True, True])
    assert bm25.best(scores, allowed, 10)[0].tolist() == [0, 2]
    alive = np.array([False, True, True, True])
    norms = bm25.length_norms(lengths, 6, 3)
    scores = bm25.score(postings, norms, alive, 3, [1, 2])
    assert scores[0] == 0 and scores[1] == scores[2] > 0  # now each word is in one live row
    assert bm25.best(scores, None, 10)[0].tolist() == [1, 2]
