"""Behaviour suite of the ``SearchIndex`` port: every adapter subclasses ``SearchIndexContract``.

A subclass provides a ``search_index`` fixture (a fresh, empty index). Vectors here are small
deterministic random unit vectors: this suite is about the index, the real model is tested with
the embeddings port.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from datatorag.domain.errors import InvalidKey, RetryableError, VectorSpaceMismatch
from datatorag.domain.models import (
    DocumentFacts,
    DocumentRecord,
    DocumentStatus,
    IndexedChunk,
    SearchHit,
)
from datatorag.ports import SearchIndex, SpaceMigration

DIMENSION = 384
TENANT = "acme"
OTHER_TENANT = "globex"


def unit(seed: int) -> list[float]:
    """A random unit vector, the same for the same seed."""
    vector = np.random.default_rng(seed).normal(size=DIMENSION)
    return [float(x) for x in vector / np.linalg.norm(vector)]


def near(base: Sequence[float], seed: int, noise: float = 0.3) -> list[float]:
    """A unit vector close to ``base`` (cosine about 0.95 for the default noise)."""
    jitter = np.random.default_rng(seed).normal(size=DIMENSION) * noise / np.sqrt(DIMENSION)
    vector = np.asarray(base) + jitter
    return [float(x) for x in vector / np.linalg.norm(vector)]


def record(doc_id: str, version: str = "v1", tenant: str = TENANT, **fields: Any) -> DocumentRecord:
    fields.setdefault("source_id", "handbook")
    fields.setdefault("source_uri", f"file:///handbook/{doc_id}.pdf")
    fields.setdefault("title", f"Title of {doc_id}")
    return DocumentRecord(tenant=tenant, doc_id=doc_id, version=version, **fields)


def make_chunks(
    doc_id: str, version: str, texts: Sequence[str], vectors: Sequence[list[float]] | None = None
) -> list[IndexedChunk]:
    vectors = vectors or [
        unit(zlib.crc32(f"{doc_id}:{version}:{i}".encode())) for i in range(len(texts))
    ]
    return [
        IndexedChunk(
            chunk_id=f"{doc_id}:{version}:{i}",
            doc_id=doc_id,
            ordinal=i,
            text=text,
            pages=[i + 1],
            heading=f"Section {i}",
            token_count=len(text.split()),
            vector=vector,
        )
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    ]


def index_doc(
    index: SearchIndex,
    doc_id: str,
    texts: Sequence[str],
    vectors: Sequence[list[float]] | None = None,
    *,
    version: str = "v1",
    tenant: str = TENANT,
    **fields: Any,
) -> list[IndexedChunk]:
    """Announce a document version and swap its chunks in, as connector and embedder do."""
    index.upsert_document(record(doc_id, version, tenant, **fields))
    chunks = make_chunks(doc_id, version, texts, vectors)
    assert index.replace_chunks(tenant, doc_id, version, chunks)
    return chunks


def ids(hits: Sequence[SearchHit]) -> list[str]:
    return [h.chunk_id for h in hits]


def doc_ids(hits: Sequence[SearchHit]) -> set[str]:
    return {h.doc_id for h in hits}


class SearchIndexContract:
    """The tests every ``SearchIndex`` adapter passes."""

    # -- documents ---------------------------------------------------------------------------

    def test_upsert_then_get_returns_the_record(self, search_index: SearchIndex) -> None:
        doc = record(
            "d1",
            media_type="application/pdf",
            size_bytes=1234,
            page_count=3,
            metadata={"country": "US", "effective_date": "2024-01-01", "year": 2024},
        )
        search_index.upsert_document(doc)
        got = search_index.get_document(TENANT, "d1")
        assert got is not None
        assert got.model_dump(exclude={"updated_at"}) == doc.model_dump(exclude={"updated_at"})
        assert got.updated_at == doc.updated_at
        assert search_index.get_document(TENANT, "missing") is None

    def test_hits_say_which_of_their_pages_were_read_by_ocr(
        self, search_index: SearchIndex
    ) -> None:
        search_index.upsert_document(record("scan", "v1"))
        scanned, typed = make_chunks("scan", "v1", ["Scanned wombat policy.", "Typed wombat memo."])
        scanned = scanned.model_copy(update={"pages": [2], "ocr_pages": [2]})
        assert search_index.replace_chunks(TENANT, "scan", "v1", [scanned, typed])
        hits = {h.chunk_id: h for h in search_index.keyword_search(TENANT, "wombat", 5)}
        assert hits[scanned.chunk_id].ocr_pages == [2] and hits[scanned.chunk_id].pages == [2]
        assert hits[typed.chunk_id].ocr_pages == []
        by_vector = search_index.vector_search(TENANT, scanned.vector, 1)
        assert by_vector[0].ocr_pages == [2]

    def test_upsert_replaces_the_record(self, search_index: SearchIndex) -> None:
        search_index.upsert_document(record("d1", "v1", title="Old"))
        search_index.upsert_document(record("d1", "v2", title="New", metadata={"k": "v"}))
        got = search_index.get_document(TENANT, "d1")
        assert got is not None
        assert (got.version, got.title, got.metadata) == ("v2", "New", {"k": "v"})
        assert len(search_index.list_documents(TENANT)) == 1

    def test_list_documents_is_ordered_by_source_uri_and_pages(
        self, search_index: SearchIndex
    ) -> None:
        uris = ["file:///e", "file:///a", "file:///d", "file:///b", "file:///c"]
        for i, uri in enumerate(uris):
            search_index.upsert_document(record(f"d{i}", source_uri=uri))
        listed = search_index.list_documents(TENANT)
        assert [d.source_uri for d in listed] == sorted(uris)
        pages = [search_index.list_documents(TENANT, limit=2, offset=o) for o in (0, 2, 4, 6)]
        assert [[d.source_uri for d in p] for p in pages] == [
            ["file:///a", "file:///b"],
            ["file:///c", "file:///d"],
            ["file:///e"],
            [],
        ]

    def test_list_documents_filters_by_source_and_status(self, search_index: SearchIndex) -> None:
        search_index.upsert_document(record("a", source_id="ftp"))
        search_index.upsert_document(record("b", source_id="sftp"))
        index_doc(search_index, "c", ["indexed text"], source_id="ftp")
        assert {d.doc_id for d in search_index.list_documents(TENANT, source_id="ftp")} == {
            "a",
            "c",
        }
        indexed = search_index.list_documents(TENANT, status=DocumentStatus.INDEXED)
        assert [d.doc_id for d in indexed] == ["c"]
        fetched = search_index.list_documents(
            TENANT, source_id="sftp", status=DocumentStatus.FETCHED
        )
        assert [d.doc_id for d in fetched] == ["b"]
        assert search_index.list_documents(TENANT, source_id="nowhere") == []

    def test_an_unknown_tenant_is_empty(self, search_index: SearchIndex) -> None:
        assert search_index.list_documents("nobody") == []
        assert search_index.get_document("nobody", "d1") is None
        assert search_index.keyword_search("nobody", "leave", 5) == []
        assert search_index.vector_search("nobody", unit(1), 5) == []

    # -- swapping chunks ---------------------------------------------------------------------

    def test_replace_chunks_makes_chunks_searchable(self, search_index: SearchIndex) -> None:
        search_index.upsert_document(record("leave", title="Parental leave"))
        chunks = make_chunks(
            "leave",
            "v1",
            ["Birthing parents receive sixteen weeks of paid leave.", "Expenses are reimbursed."],
        )
        assert search_index.replace_chunks(
            TENANT, "leave", "v1", chunks, facts=DocumentFacts(page_count=7)
        )

        doc = search_index.get_document(TENANT, "leave")
        assert doc is not None
        assert (doc.status, doc.chunk_count, doc.page_count) == (DocumentStatus.INDEXED, 2, 7)
        hits = search_index.keyword_search(TENANT, "sixteen weeks", 5)
        assert ids(hits) == ["leave:v1:0"]
        hit = hits[0]
        assert (hit.title, hit.source_uri, hit.pages, hit.heading) == (
            "Parental leave",
            "file:///handbook/leave.pdf",
            [1],
            "Section 0",
        )
        assert hit.text == chunks[0].text
        assert hit.score > 0
        nearest = search_index.vector_search(TENANT, chunks[1].vector, 1)
        assert ids(nearest) == ["leave:v1:1"]
        assert nearest[0].score == pytest.approx(1.0, abs=1e-4)

    def test_replace_chunks_takes_the_title_found_by_the_processor(
        self, search_index: SearchIndex
    ) -> None:
        search_index.upsert_document(record("d1", title="scan_0042"))
        chunks = make_chunks("d1", "v1", ["Overtime is paid at one and a half times."])
        assert search_index.replace_chunks(
            TENANT, "d1", "v1", chunks, facts=DocumentFacts(title="Overtime policy")
        )
        doc = search_index.get_document(TENANT, "d1")
        assert doc is not None and doc.title == "Overtime policy"
        assert search_index.keyword_search(TENANT, "overtime", 1)[0].title == "Overtime policy"

    def test_a_new_version_replaces_the_old_one(self, search_index: SearchIndex) -> None:
        old = index_doc(search_index, "d1", ["The old remote work policy.", "Old stipend rules."])
        new = make_chunks("d1", "v2", ["The new hybrid work policy."])
        search_index.upsert_document(record("d1", "v2"))
        # Until v2's chunks arrive, v1 stays searchable.
        assert ids(search_index.keyword_search(TENANT, "stipend", 5)) == ["d1:v1:1"]
        assert search_index.replace_chunks(TENANT, "d1", "v2", new)

        assert search_index.keyword_search(TENANT, "old stipend remote", 10) == []
        assert ids(search_index.keyword_search(TENANT, "hybrid", 10)) == ["d1:v2:0"]
        hits = search_index.vector_search(TENANT, old[0].vector, 10)
        assert ids(hits) == ["d1:v2:0"]
        doc = search_index.get_document(TENANT, "d1")
        assert doc is not None and (doc.version, doc.chunk_count) == ("v2", 1)

    def test_a_stale_version_is_refused_and_writes_nothing(self, search_index: SearchIndex) -> None:
        search_index.upsert_document(record("d1", "v2"))
        stale = make_chunks("d1", "v1", ["Stale text about sabbaticals."])
        assert (
            search_index.replace_chunks(
                TENANT, "d1", "v1", stale, facts=DocumentFacts(page_count=9)
            )
            is False
        )

        doc = search_index.get_document(TENANT, "d1")
        assert doc is not None
        assert (doc.version, doc.status, doc.chunk_count, doc.page_count) == (
            "v2",
            DocumentStatus.FETCHED,
            0,
            None,
        )
        assert search_index.keyword_search(TENANT, "sabbaticals", 5) == []
        assert search_index.vector_search(TENANT, stale[0].vector, 5) == []

    def test_a_stale_version_leaves_the_indexed_one_alone(self, search_index: SearchIndex) -> None:
        index_doc(search_index, "d1", ["Current text about sabbaticals."], version="v2")
        stale = make_chunks("d1", "v1", ["Stale text about sabbaticals."])
        assert search_index.replace_chunks(TENANT, "d1", "v1", stale) is False
        assert ids(search_index.keyword_search(TENANT, "sabbaticals", 5)) == ["d1:v2:0"]

    def test_chunks_for_an_unknown_document_are_refused(self, search_index: SearchIndex) -> None:
        chunks = make_chunks("ghost", "v1", ["No record announced this."])
        assert search_index.replace_chunks(TENANT, "ghost", "v1", chunks) is False
        assert search_index.keyword_search(TENANT, "announced", 5) == []

    def test_replaying_a_swap_is_idempotent(self, search_index: SearchIndex) -> None:
        search_index.upsert_document(record("d1"))
        chunks = make_chunks("d1", "v1", ["Jury duty is paid leave.", "Jury summons go to HR."])
        assert search_index.replace_chunks(TENANT, "d1", "v1", chunks)
        assert search_index.replace_chunks(TENANT, "d1", "v1", chunks)

        assert sorted(ids(search_index.keyword_search(TENANT, "jury", 10))) == [
            "d1:v1:0",
            "d1:v1:1",
        ]
        assert sorted(ids(search_index.vector_search(TENANT, chunks[0].vector, 10))) == [
            "d1:v1:0",
            "d1:v1:1",
        ]
        doc = search_index.get_document(TENANT, "d1")
        assert doc is not None and (doc.status, doc.chunk_count) == (DocumentStatus.INDEXED, 2)

    def test_version_swaps_are_atomic_for_concurrent_readers(
        self, search_index: SearchIndex
    ) -> None:
        """Readers see all of one version's chunks, never a mix, never none."""
        base = unit(7)
        index_doc(
            search_index,
            "stable",
            ["zebra crossing rules"] * 3,
            [near(base, 100 + i) for i in range(3)],
        )

        def swap_in(version: str) -> None:
            search_index.upsert_document(record("swap", version))
            texts = [f"zebra stripes {version} part {i}" for i in range(5)]
            chunks = make_chunks("swap", version, texts, [near(base, i) for i in range(5)])
            assert search_index.replace_chunks(TENANT, "swap", version, chunks)

        swap_in("r0")
        stop = threading.Event()
        problems: list[str] = []
        seen: Counter[str] = Counter()

        def check(mode: str, hits: list[SearchHit]) -> None:
            swapped = [h.chunk_id for h in hits if h.doc_id == "swap"]
            versions = {chunk_id.split(":")[1] for chunk_id in swapped}
            if len(versions) != 1 or len(swapped) != 5:
                problems.append(f"{mode}: {sorted(swapped)}")
            else:
                seen[versions.pop()] += 1

        def read() -> None:
            try:
                while not stop.is_set():
                    check("keyword", search_index.keyword_search(TENANT, "zebra", 50))
                    check("vector", search_index.vector_search(TENANT, base, 50))
            except Exception as err:  # a reader that dies must fail the test, not hide
                problems.append(repr(err))

        readers = [threading.Thread(target=read) for _ in range(2)]
        for reader in readers:
            reader.start()
        try:
            deadline = time.monotonic() + 20
            round_ = 0
            while time.monotonic() < deadline and (len(seen) < 5 or round_ < 40):
                round_ += 1
                swap_in(f"r{round_}")
        finally:
            stop.set()
            for reader in readers:
                reader.join()
        assert problems == []
        assert len(seen) >= 5, f"readers saw too few versions to test the swap: {dict(seen)}"

    # -- deletion and status -----------------------------------------------------------------

    def test_delete_document_drops_chunks_and_keeps_the_record(
        self, search_index: SearchIndex
    ) -> None:
        chunks = index_doc(search_index, "d1", ["Severance pay is two weeks per year."])
        index_doc(search_index, "d2", ["Severance for executives differs."])
        search_index.delete_document(TENANT, "d1")

        assert doc_ids(search_index.keyword_search(TENANT, "severance", 10)) == {"d2"}
        assert doc_ids(search_index.vector_search(TENANT, chunks[0].vector, 10)) == {"d2"}
        doc = search_index.get_document(TENANT, "d1")
        assert doc is not None
        assert (doc.status, doc.chunk_count) == (DocumentStatus.DELETED, 0)
        deleted = search_index.list_documents(TENANT, status=DocumentStatus.DELETED)
        assert [d.doc_id for d in deleted] == ["d1"]

        search_index.delete_document(TENANT, "d1")  # idempotent
        search_index.delete_document(TENANT, "never-existed")
        assert search_index.replace_chunks(TENANT, "d1", "v1", chunks) is False
        assert doc_ids(search_index.keyword_search(TENANT, "severance", 10)) == {"d2"}
        doc = search_index.get_document(TENANT, "d1")
        assert doc is not None and doc.status == DocumentStatus.DELETED

    def test_a_deleted_document_can_come_back(self, search_index: SearchIndex) -> None:
        index_doc(search_index, "d1", ["Bereavement leave is five days."])
        search_index.delete_document(TENANT, "d1")
        index_doc(search_index, "d1", ["Bereavement leave is five days."])
        assert ids(search_index.keyword_search(TENANT, "bereavement", 5)) == ["d1:v1:0"]
        doc = search_index.get_document(TENANT, "d1")
        assert doc is not None and doc.status == DocumentStatus.INDEXED

    def test_set_status_is_conditional_on_the_version(self, search_index: SearchIndex) -> None:
        search_index.upsert_document(record("d1", "v2"))
        assert search_index.set_status(TENANT, "d1", DocumentStatus.PROCESSING, version="v2")
        doc = search_index.get_document(TENANT, "d1")
        assert doc is not None and doc.status == DocumentStatus.PROCESSING

        stale = search_index.set_status(
            TENANT, "d1", DocumentStatus.FAILED, version="v1", reason="old version failed"
        )
        assert stale is False
        doc = search_index.get_document(TENANT, "d1")
        assert doc is not None and (doc.status, doc.reason) == (DocumentStatus.PROCESSING, None)

        assert search_index.set_status(
            TENANT, "d1", DocumentStatus.FAILED, version="v2", reason="the PDF is encrypted"
        )
        doc = search_index.get_document(TENANT, "d1")
        assert doc is not None
        assert (doc.status, doc.reason) == (DocumentStatus.FAILED, "the PDF is encrypted")

        assert search_index.set_status(TENANT, "d1", DocumentStatus.FETCHED)  # unconditional
        assert search_index.set_status(TENANT, "ghost", DocumentStatus.FAILED) is False
        assert (
            search_index.set_status(TENANT, "ghost", DocumentStatus.FAILED, version="v1") is False
        )

    def test_set_status_does_not_revive_a_deleted_document(self, search_index: SearchIndex) -> None:
        index_doc(search_index, "d1", ["Text."])
        search_index.delete_document(TENANT, "d1")
        revived = search_index.set_status(
            TENANT, "d1", DocumentStatus.FAILED, version="v1", reason="late failure"
        )
        assert revived is False
        doc = search_index.get_document(TENANT, "d1")
        assert doc is not None and doc.status == DocumentStatus.DELETED

    def test_a_failed_newer_version_keeps_the_indexed_chunks(
        self, search_index: SearchIndex
    ) -> None:
        index_doc(search_index, "d1", ["Tuition assistance covers courses."])
        search_index.upsert_document(record("d1", "v2"))
        assert search_index.set_status(
            TENANT, "d1", DocumentStatus.FAILED, version="v2", reason="corrupt"
        )
        assert ids(search_index.keyword_search(TENANT, "tuition", 5)) == ["d1:v1:0"]

    # -- tenants -----------------------------------------------------------------------------

    def test_tenants_never_see_each_other(self, search_index: SearchIndex) -> None:
        vector = unit(42)
        index_doc(search_index, "d1", ["Acme pays a wellness stipend."], [vector])
        index_doc(
            search_index,
            "d1",
            ["Globex pays a wellness stipend too."],
            [vector],
            tenant=OTHER_TENANT,
            title="Globex wellness",
        )
        for tenant, text in ((TENANT, "Acme"), (OTHER_TENANT, "Globex")):
            keyword = search_index.keyword_search(tenant, "wellness stipend", 10)
            semantic = search_index.vector_search(tenant, vector, 10)
            assert [h.text.split()[0] for h in keyword + semantic] == [text, text]
        got = search_index.get_document(OTHER_TENANT, "d1")
        assert got is not None and (got.tenant, got.title) == (OTHER_TENANT, "Globex wellness")

        search_index.delete_document(TENANT, "d1")
        assert search_index.keyword_search(TENANT, "wellness", 10) == []
        assert len(search_index.keyword_search(OTHER_TENANT, "wellness", 10)) == 1
        other = search_index.get_document(OTHER_TENANT, "d1")
        assert other is not None and other.status == DocumentStatus.INDEXED

    @pytest.mark.parametrize(
        "tenant",
        ["", "../acme", "acme/x", "Acme", "a.b", "-acme", "a" * 64, "acme\x00", " acme", "acme\n"],
    )
    def test_invalid_tenant_names_are_rejected(
        self, search_index: SearchIndex, tenant: str
    ) -> None:
        calls: list[Callable[[], object]] = [
            lambda: search_index.get_document(tenant, "d1"),
            lambda: search_index.list_documents(tenant),
            lambda: search_index.set_status(tenant, "d1", DocumentStatus.FAILED),
            lambda: search_index.replace_chunks(tenant, "d1", "v1", []),
            lambda: search_index.delete_document(tenant, "d1"),
            lambda: search_index.keyword_search(tenant, "leave", 5),
            lambda: search_index.vector_search(tenant, unit(1), 5),
        ]
        for call in calls:
            with pytest.raises(InvalidKey):
                call()
        with pytest.raises((InvalidKey, ValueError)):  # pydantic may refuse it first
            search_index.upsert_document(record("d1", tenant=tenant))

    # -- keyword queries ---------------------------------------------------------------------

    @pytest.mark.parametrize(
        "query",
        [
            '"AND OR NOT * - ( ) : ^ NEAR',
            '"unbalanced quote leave',
            "leave AND",
            "OR leave",
            "NEAR(leave policy, 2)",
            "heading:leave",
            "-leave",
            "leave*",
            "^leave",
            "{leave policy}",
            "leave'; DROP TABLE chunks; --",
            "café naïve ÉTÉ",
            "leave" + " policy" * 500,
        ],
    )
    def test_keyword_search_treats_user_text_as_words(
        self, search_index: SearchIndex, query: str
    ) -> None:
        index_doc(search_index, "d1", ["The leave policy explains leave."])
        index_doc(search_index, "d2", ["Unrelated text on expenses."])
        hits = search_index.keyword_search(TENANT, query, 5)
        assert all(h.doc_id == "d1" for h in hits)
        if "leave" in query:
            assert ids(hits) == ["d1:v1:0"]
        assert len(search_index.keyword_search(TENANT, "leave", 5)) == 1  # nothing was dropped

    @pytest.mark.parametrize("query", ["", "   ", "\n\t", '"', "*", "( ) : ^ -", '""'])
    def test_keyword_search_without_words_returns_nothing(
        self, search_index: SearchIndex, query: str
    ) -> None:
        index_doc(search_index, "d1", ["The leave policy."])
        assert search_index.keyword_search(TENANT, query, 5) == []

    def test_keyword_search_matches_word_forms_and_ranks_best_first(
        self, search_index: SearchIndex
    ) -> None:
        index_doc(
            search_index,
            "d1",
            [
                "Employees accrue vacation days monthly; vacation accrual caps at 30 days.",
                "The office is closed on public holidays.",
                "Unused vacation is paid out.",
            ],
        )
        hits = search_index.keyword_search(TENANT, "How do vacations accrue?", 10)
        assert ids(hits)[0] == "d1:v1:0"
        assert set(ids(hits)) == {"d1:v1:0", "d1:v1:2"}
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)

    def test_keyword_search_finds_words_in_titles_and_headings(
        self, search_index: SearchIndex
    ) -> None:
        index_doc(
            search_index, "d1", ["Nothing relevant in the body."], title="Whistleblower policy"
        )
        index_doc(search_index, "d2", ["Another body."], title="Travel")
        assert doc_ids(search_index.keyword_search(TENANT, "whistleblower", 5)) == {"d1"}
        assert len(search_index.keyword_search(TENANT, "section", 5)) == 2  # the headings

    # -- vector queries ----------------------------------------------------------------------

    def test_vector_search_ranks_by_cosine(self, search_index: SearchIndex) -> None:
        base = unit(3)
        vectors = [near(base, 1, noise=0.1), near(base, 2, noise=1.0), unit(4)]
        index_doc(search_index, "d1", ["close", "farther", "unrelated"], vectors)
        hits = search_index.vector_search(TENANT, base, 3)
        assert ids(hits) == ["d1:v1:0", "d1:v1:1", "d1:v1:2"]
        expected = [float(np.dot(base, v)) for v in vectors]
        assert [h.score for h in hits] == pytest.approx(expected, abs=1e-4)

    def test_top_k_larger_than_the_corpus_returns_everything_once(
        self, search_index: SearchIndex
    ) -> None:
        index_doc(search_index, "d1", ["pension plan one", "pension plan two"])
        index_doc(search_index, "d2", ["pension plan three"])
        assert len(search_index.keyword_search(TENANT, "pension", 1000)) == 3
        hits = search_index.vector_search(TENANT, unit(5), 1000)
        assert sorted(ids(hits)) == ["d1:v1:0", "d1:v1:1", "d2:v1:0"]
        assert search_index.keyword_search(TENANT, "pension", 0) == []
        assert search_index.vector_search(TENANT, unit(5), 0) == []

    # -- filters -----------------------------------------------------------------------------

    def _filter_corpus(self, index: SearchIndex) -> list[float]:
        """Three documents where ``a`` ranks first for both queries unless filtered out, and
        unrelated fillers (they give the query words a positive IDF). Returns the query vector.
        """
        base = unit(11)
        docs = {
            "a": ("ftp", "application/pdf", "US", "2023-06-01", 5, 0.05, 6),
            "b": ("sftp", "text/html", "FR", "2024-03-15", 10, 0.8, 3),
            "c": ("ftp", "text/markdown", "US", "2025-01-10", 20, 1.5, 1),
        }
        for doc_id, (source, media, country, date, grade, noise, repeats) in docs.items():
            index_doc(
                index,
                doc_id,
                [" ".join(["pension"] * repeats) + f" contributions for {doc_id}"],
                [near(base, ord(doc_id), noise=noise)],
                source_id=source,
                media_type=media,
                metadata={"country": country, "effective_date": date, "grade": grade},
            )
        for i in range(5):
            index_doc(
                index, f"filler{i}", [f"Travel booking rules, part {i}."], source_id="archive"
            )
        return base

    @pytest.mark.parametrize(
        ("filters", "expected"),
        [
            ({"source_id": "sftp"}, ["b"]),
            ({"source_id": "ftp"}, ["a", "c"]),
            ({"doc_id": "c"}, ["c"]),
            ({"doc_id": ["b", "c"]}, ["b", "c"]),
            ({"media_type": ["text/html", "text/markdown"]}, ["b", "c"]),
            ({"metadata.country": "FR"}, ["b"]),
            ({"metadata.country": ["FR", "DE"]}, ["b"]),
            ({"metadata.country": "US", "source_id": "ftp"}, ["a", "c"]),
            ({"effective_date": {"gte": "2024-01-01"}}, ["b", "c"]),
            ({"effective_date": {"gte": "2024-01-01", "lte": "2024-12-31"}}, ["b"]),
            ({"metadata.effective_date": {"lt": "2024-03-15"}}, ["a"]),
            ({"metadata.effective_date": {"gt": "2024-03-15"}}, ["c"]),
            ({"metadata.grade": {"gte": 10}}, ["b", "c"]),
            ({"metadata.grade": {"gt": 5, "lt": 20}}, ["b"]),
            ({"metadata.grade": 20}, ["c"]),
            ({"metadata.country": "JP"}, []),
            ({"metadata.missing": "x"}, []),
            ({"media_type": []}, []),
            ({}, ["a", "b", "c"]),
        ],
    )
    def test_filters_apply_in_both_searches(
        self, search_index: SearchIndex, filters: dict[str, Any], expected: list[str]
    ) -> None:
        query = self._filter_corpus(search_index)
        keyword = search_index.keyword_search(TENANT, "pension contributions", 10, filters)
        assert [h.doc_id for h in keyword] == expected
        semantic = [h.doc_id for h in search_index.vector_search(TENANT, query, 10, filters)]
        fillers = [d for d in semantic if d.startswith("filler")]
        assert [d for d in semantic if d not in fillers] == expected
        assert len(fillers) == (5 if not filters else 0)  # fillers have no metadata

    @pytest.mark.parametrize(
        ("wanted", "expected"),
        [
            (["GB"], ["both", "none", "uk"]),
            (["US"], ["both", "none", "us"]),
            (["DE"], ["none"]),
            (["DE", "US"], ["both", "none", "us"]),
            ([], ["none"]),
        ],
    )
    def test_missing_or_in_keeps_documents_that_state_nothing(
        self, search_index: SearchIndex, wanted: list[str], expected: list[str]
    ) -> None:
        """How searches for an employee filter on applicability (a list of countries)."""
        query = unit(7)
        for n, (doc_id, countries) in enumerate(
            [("us", ["US"]), ("uk", ["GB"]), ("both", ["US", "GB"]), ("none", None)]
        ):
            metadata = {"countries": countries} if countries else {"document_type": "benefits"}
            index_doc(
                search_index,
                doc_id,
                ["Pension contributions by the company."],
                [near(query, n)],
                metadata=metadata,
            )
        filters = {"metadata.countries": {"missing_or_in": wanted}}
        keyword = search_index.keyword_search(TENANT, "pension contributions", 10, filters)
        semantic = search_index.vector_search(TENANT, query, 10, filters)
        assert sorted(h.doc_id for h in keyword) == expected
        assert sorted(h.doc_id for h in semantic) == expected

    @pytest.mark.parametrize(
        "filters",
        [
            {"source_id": "sftp"},
            {"metadata.country": "FR"},
            {"effective_date": {"gte": "2024-01-01", "lte": "2024-12-31"}},
        ],
    )
    def test_filters_apply_before_truncation(
        self, search_index: SearchIndex, filters: dict[str, Any]
    ) -> None:
        query = self._filter_corpus(search_index)
        assert [h.doc_id for h in search_index.keyword_search(TENANT, "pension", 1)] == ["a"]
        assert [h.doc_id for h in search_index.vector_search(TENANT, query, 1)] == ["a"]
        keyword = search_index.keyword_search(TENANT, "pension", 1, filters)
        semantic = search_index.vector_search(TENANT, query, 1, filters)
        assert [h.doc_id for h in keyword] == ["b"]
        assert [h.doc_id for h in semantic] == ["b"]

    @pytest.mark.parametrize(
        "filters",
        [
            {"colour": "red"},
            {"title": "x"},
            {"metadata.": "x"},
            {"metadata.a.b": "x"},
            {"metadata.bad key": "x"},
            {"effective_date": {"after": "2024-01-01"}},
            {"effective_date": {}},
            {"effective_date": {"gte": ["2024"]}},
            {"source_id": {"$ne": "x"}},
            {"source_id": 5},
            {"metadata.country": {"nested": {"x": 1}}},
            {"metadata.country": [["US"]]},
            {"source_id": {"missing_or_in": ["x"]}},
            {"metadata.country": {"missing_or_in": "US"}},
            {"metadata.country": {"missing_or_in": ["US"], "gte": "A"}},
            {"metadata.country": {"missing_or_in": [1]}},
        ],
    )
    def test_invalid_filters_raise_value_error(
        self, search_index: SearchIndex, filters: dict[str, Any]
    ) -> None:
        self._filter_corpus(search_index)
        with pytest.raises(ValueError):
            search_index.keyword_search(TENANT, "pension", 5, filters)
        with pytest.raises(ValueError):
            search_index.vector_search(TENANT, unit(1), 5, filters)

    def test_what_a_document_says_of_itself_merges_under_its_source_metadata(
        self, search_index: SearchIndex
    ) -> None:
        search_index.upsert_document(
            record("m", metadata={"tags": ["benefits", "us"], "document_type": "handbook"})
        )
        chunks = make_chunks("m", "v1", ["Dental cover starts on day one."])
        derived = {"document_type": "benefits", "effective_date": "2024-03-01"}
        assert search_index.replace_chunks(
            TENANT, "m", "v1", chunks, facts=DocumentFacts(metadata=derived)
        )
        stored = search_index.get_document(TENANT, "m")
        assert stored is not None
        assert stored.metadata == {
            "tags": ["benefits", "us"],
            "document_type": "handbook",
            "effective_date": "2024-03-01",
        }  # the source wins on a clash
        for filters in (
            {"metadata.tags": "us"},
            {"effective_date": {"gte": "2024-01-01"}},
            {"metadata.document_type": "handbook"},
        ):
            assert ids(search_index.keyword_search(TENANT, "dental", 5, filters)) == ["m:v1:0"]
            assert ids(search_index.vector_search(TENANT, chunks[0].vector, 5, filters)) == [
                "m:v1:0"
            ]
        assert search_index.keyword_search(TENANT, "dental", 5, {"metadata.tags": "uk"}) == []


SPACE = "all-MiniLM-L6-v2/fp32/384"
OTHER_SPACE = "all-MiniLM-L6-v2/int8/384"


class VectorSpaceContract:
    """Which embedding space a tenant's vectors are in (``domain.spaces``): recorded by the
    first write that says, and never mixed with another."""

    def test_the_first_write_records_the_space_per_tenant(self, search_index: SearchIndex) -> None:
        assert search_index.vector_space(TENANT) is None
        search_index.upsert_document(record("d1"))
        chunks = make_chunks("d1", "v1", ["Parental leave is sixteen weeks."])
        assert search_index.replace_chunks(TENANT, "d1", "v1", chunks, space=SPACE)
        assert search_index.vector_space(TENANT) == SPACE
        assert search_index.vector_space(OTHER_TENANT) is None

    def test_a_write_in_another_space_is_refused_and_mixes_nothing(
        self, search_index: SearchIndex
    ) -> None:
        search_index.upsert_document(record("d1"))
        old = make_chunks("d1", "v1", ["Parental leave is sixteen weeks."])
        assert search_index.replace_chunks(TENANT, "d1", "v1", old, space=SPACE)
        search_index.upsert_document(record("d2"))
        other = make_chunks("d2", "v1", ["Wombat allowance applies."])
        with pytest.raises(VectorSpaceMismatch) as raised:
            search_index.replace_chunks(TENANT, "d2", "v1", other, space=OTHER_SPACE)
        assert raised.value.index_space == SPACE and raised.value.given_space == OTHER_SPACE
        assert isinstance(raised.value, RetryableError)  # the embedder tries again later
        # A new version of an indexed document: refused too, the old version stays searchable.
        search_index.upsert_document(record("d1", "v2"))
        newer = make_chunks("d1", "v2", ["Parental leave is twenty weeks."])
        with pytest.raises(VectorSpaceMismatch):
            search_index.replace_chunks(TENANT, "d1", "v2", newer, space=OTHER_SPACE)
        hits = search_index.vector_search(TENANT, old[0].vector, 10, space=SPACE)
        assert ids(hits) == [old[0].chunk_id]
        assert search_index.keyword_search(TENANT, "wombat", 5) == []
        assert search_index.vector_space(TENANT) == SPACE

    def test_a_query_in_another_space_is_never_compared(self, search_index: SearchIndex) -> None:
        search_index.upsert_document(record("d1"))
        chunks = make_chunks("d1", "v1", ["Parental leave is sixteen weeks."])
        assert search_index.replace_chunks(TENANT, "d1", "v1", chunks, space=SPACE)
        with pytest.raises(VectorSpaceMismatch):
            search_index.vector_search(TENANT, chunks[0].vector, 5, space=OTHER_SPACE)
        assert ids(search_index.vector_search(TENANT, chunks[0].vector, 5, space=SPACE)) == [
            chunks[0].chunk_id
        ]

    def test_a_tenant_with_no_chunks_left_takes_the_new_space(
        self, search_index: SearchIndex
    ) -> None:
        search_index.upsert_document(record("d1"))
        chunks = make_chunks("d1", "v1", ["Parental leave is sixteen weeks."])
        assert search_index.replace_chunks(TENANT, "d1", "v1", chunks, space=SPACE)
        search_index.delete_document(TENANT, "d1")
        search_index.upsert_document(record("d2"))
        fresh = make_chunks("d2", "v1", ["Wombat allowance applies."])
        assert search_index.replace_chunks(TENANT, "d2", "v1", fresh, space=OTHER_SPACE)
        assert search_index.vector_space(TENANT) == OTHER_SPACE
        assert ids(search_index.vector_search(TENANT, fresh[0].vector, 5, space=OTHER_SPACE)) == [
            fresh[0].chunk_id
        ]


class SpaceMigrationContract:
    """Re-embedding: vectors staged in a new space stay invisible until one swap makes them
    the searched ones (``SpaceMigration``)."""

    def test_staged_vectors_are_swapped_in_at_once(self, search_index: SearchIndex) -> None:
        assert isinstance(search_index, SpaceMigration)
        search_index.upsert_document(record("d1"))
        old = make_chunks("d1", "v1", ["Parental leave.", "Sick leave.", "Wombat care."])
        assert search_index.replace_chunks(TENANT, "d1", "v1", old, space=SPACE)
        new_vectors = {c.chunk_id: unit(1000 + i) for i, c in enumerate(old)}
        assert search_index.swap_space(TENANT, OTHER_SPACE) == sorted(new_vectors)
        search_index.stage_vectors(TENANT, OTHER_SPACE, dict(list(new_vectors.items())[:2]))
        # Partly staged: the swap says what is missing and changes nothing.
        assert search_index.swap_space(TENANT, OTHER_SPACE) == [old[2].chunk_id]
        assert search_index.vector_space(TENANT) == SPACE
        assert ids(search_index.vector_search(TENANT, old[0].vector, 1, space=SPACE)) == [
            old[0].chunk_id
        ]
        search_index.stage_vectors(
            TENANT, OTHER_SPACE, {old[2].chunk_id: new_vectors[old[2].chunk_id]}
        )
        assert search_index.swap_space(TENANT, OTHER_SPACE) == []
        assert search_index.vector_space(TENANT) == OTHER_SPACE
        with pytest.raises(VectorSpaceMismatch):
            search_index.vector_search(TENANT, old[0].vector, 1, space=SPACE)
        for chunk_id, vector in new_vectors.items():
            best = search_index.vector_search(TENANT, vector, 1, space=OTHER_SPACE)
            assert ids(best) == [chunk_id] and best[0].score == pytest.approx(1.0, abs=1e-5)
        # Keyword search and the records are untouched by the swap.
        assert ids(search_index.keyword_search(TENANT, "wombat", 5)) == [old[2].chunk_id]
        doc = search_index.get_document(TENANT, "d1")
        assert doc is not None and doc.status == DocumentStatus.INDEXED and doc.chunk_count == 3

    def test_chunks_that_changed_since_staging_hold_the_swap_back(
        self, search_index: SearchIndex
    ) -> None:
        assert isinstance(search_index, SpaceMigration)
        search_index.upsert_document(record("d1"))
        old = make_chunks("d1", "v1", ["Parental leave."])
        assert search_index.replace_chunks(TENANT, "d1", "v1", old, space=SPACE)
        search_index.stage_vectors(TENANT, OTHER_SPACE, {old[0].chunk_id: unit(7)})
        # A new version lands in the old space meanwhile (the embedder still ran the old model).
        search_index.upsert_document(record("d1", "v2"))
        newer = make_chunks("d1", "v2", ["Parental leave, revised."])
        assert search_index.replace_chunks(TENANT, "d1", "v2", newer, space=SPACE)
        assert search_index.swap_space(TENANT, OTHER_SPACE) == [newer[0].chunk_id]
        search_index.stage_vectors(TENANT, OTHER_SPACE, {newer[0].chunk_id: unit(8)})
        assert search_index.swap_space(TENANT, OTHER_SPACE) == []
        assert ids(search_index.vector_search(TENANT, unit(8), 5, space=OTHER_SPACE)) == [
            newer[0].chunk_id
        ]

    def test_staging_for_another_space_drops_the_earlier_staging(
        self, search_index: SearchIndex
    ) -> None:
        assert isinstance(search_index, SpaceMigration)
        search_index.upsert_document(record("d1"))
        old = make_chunks("d1", "v1", ["Parental leave."])
        assert search_index.replace_chunks(TENANT, "d1", "v1", old, space=SPACE)
        search_index.stage_vectors(TENANT, OTHER_SPACE, {old[0].chunk_id: unit(7)})
        third = "other-model/fp32/384"
        search_index.stage_vectors(TENANT, third, {})
        assert search_index.swap_space(TENANT, OTHER_SPACE) == [old[0].chunk_id]
        with pytest.raises(ValueError, match="dimensions"):
            search_index.stage_vectors(TENANT, "small-model/fp32/8", {old[0].chunk_id: unit(1)})
