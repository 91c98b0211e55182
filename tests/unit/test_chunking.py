"""Chunking, counted with the real MiniLM tokenizer."""

from __future__ import annotations

import itertools
import re

import pytest
from tokenizers import Tokenizer

from datatorag.domain.text import contextual_text
from datatorag.settings import Settings
from datatorag_processor.bootstrap import build_chunker
from datatorag_processor.extract import extract
from datatorag_processor.extract.model import Block, ExtractedDocument

pytestmark = pytest.mark.unit

TITLE = "Leave policy"


@pytest.fixture(scope="module")
def settings():
    return Settings(_env_file=None)


@pytest.fixture(scope="module")
def chunker(settings):
    return build_chunker(settings)


@pytest.fixture(scope="module")
def model_tokens(settings):
    """Length as the model sees it: specials included, nothing truncated."""
    tokenizer = Tokenizer.from_file(str(settings.tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return lambda text: len(tokenizer.encode(text).ids)


def doc(*blocks: Block) -> ExtractedDocument:
    return ExtractedDocument(title=TITLE, blocks=blocks, page_count=3, media_type="text/plain")


def sentence(i: int) -> str:
    return f"Rule {i}: employees must request leave number {i} at least {i} days in advance."


def test_no_chunk_exceeds_the_model_window_even_with_its_header(chunker, settings, model_tokens):
    long_paragraph = " ".join(sentence(i) for i in range(200))
    unbroken = "x" * 5000  # no sentence or word breaks at all
    source = "people ops / united states / leave policies and procedures 2024"
    chunks = chunker.chunk(
        "d",
        "v" * 12,
        TITLE,
        doc(
            Block("heading", "Eligibility", page=1, level=1),
            Block("paragraph", long_paragraph, page=1, headings=("Eligibility",)),
            Block("paragraph", unbroken, page=2, headings=("Eligibility",)),
        ),
        source,
    )
    assert len(chunks) > 5
    for chunk in chunks:
        full = contextual_text(TITLE, chunk.heading, chunk.text, source)
        assert model_tokens(full) <= settings.model_max_tokens
        assert chunk.token_count == model_tokens(full) - 2  # counted without [CLS]/[SEP]


def test_nothing_is_lost_and_neighbours_overlap(chunker):
    sentences = [sentence(i) for i in range(120)]
    chunks = chunker.chunk(
        "d", "v" * 12, TITLE, doc(Block("paragraph", " ".join(sentences), page=1))
    )
    joined = "\n".join(c.text for c in chunks)
    assert all(s in joined for s in sentences)

    def sentences_of(text: str) -> set[str]:
        return set(re.split(r"(?<=\.)\s+", text))

    shared = [sentences_of(a.text) & sentences_of(b.text) for a, b in itertools.pairwise(chunks)]
    assert all(shared), "consecutive chunks of one section overlap"


def test_chunks_follow_headings_and_keep_pages(chunker):
    body = " ".join(sentence(i) for i in range(15))
    chunks = chunker.chunk(
        "d",
        "v" * 12,
        TITLE,
        doc(
            Block("heading", "Vacation", page=1, level=1),
            Block("paragraph", body, page=1, headings=("Vacation",)),
            Block("heading", "Sick leave", page=2, level=1),
            Block(
                "paragraph",
                "Sick leave is unlimited and needs no note.",
                page=3,
                headings=("Sick leave",),
            ),
        ),
    )
    assert chunks[0].heading == "Vacation" and chunks[0].pages == [1]
    last = chunks[-1]
    assert last.heading == "Sick leave" and last.pages == [2, 3]
    assert "Sick leave is unlimited" in last.text and "Rule 3" not in last.text
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_table_rows_keep_their_column_headers_in_every_chunk(chunker):
    header = ("Country", "Days of leave", "Notes")
    rows = [Block("table_row", "\t".join(header), page=1, cells=header)] + [
        Block(
            "table_row",
            f"Country {i}\t{i} days\tSee the local addendum {i}",
            page=1,
            cells=(f"Country {i}", f"{i} days", f"See the local addendum {i}"),
            header=header,
        )
        for i in range(60)
    ]
    chunks = chunker.chunk("d", "v" * 12, TITLE, doc(*rows))
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.text.splitlines()[0] == "\t".join(header)


def test_real_pdf_chunks_fit_and_carry_pages(chunker, settings, model_tokens, corpus_dir):
    pdf = corpus_dir / "pdf" / "chromium" / "sourcegraph" / "benefits.pdf"
    extracted = extract(pdf.read_bytes(), pdf.name, max_bytes=10**8, max_pages=100)
    chunks = chunker.chunk("d", "v" * 12, extracted.title or "", extracted)
    assert {p for c in chunks for p in c.pages} == set(range(1, extracted.page_count + 1))
    assert (
        max(model_tokens(contextual_text(extracted.title or "", c.heading, c.text)) for c in chunks)
        <= settings.model_max_tokens
    )


def test_overlap_must_stay_under_half_the_size(settings):
    from datatorag_processor.chunking import Chunker, TokenCounter

    with pytest.raises(ValueError, match="overlap"):
        Chunker(TokenCounter(settings.tokenizer_file), max_tokens=100, overlap_tokens=50)


def test_source_labels_read_as_words():
    from datatorag.domain.text import source_label

    assert source_label("benefits/us/parental-leave.pdf") == "benefits / us / parental leave"
    text = contextual_text("PTO", "Rules", "Ask first.", "hr / pto")
    assert text == "hr / pto: PTO > Rules\nAsk first."
