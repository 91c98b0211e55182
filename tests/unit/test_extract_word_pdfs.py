"""Word-exported policy PDFs (tests/fixtures/word_pdfs/, made by scripts/make_word_pdfs.py with
python-docx and LibreOffice): numbered clauses that wrap and run across page breaks, a running
header (one of them two lines, 2.2 cm down), a "Version 1.0 Page N of M" footer and a table.
Every paragraph must come out as one block, word for word, and no header or footer between."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datatorag_processor.extract import extract

pytestmark = pytest.mark.unit

WORD_PDFS = Path(__file__).resolve().parents[1] / "fixtures" / "word_pdfs"
NAMES = ["grievance-policy", "disciplinary-procedure"]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\t", " ")).strip()


@pytest.mark.parametrize("name", NAMES)
def test_every_paragraph_comes_out_whole(name: str) -> None:
    pdf = WORD_PDFS / f"{name}.pdf"
    doc = extract(pdf.read_bytes(), pdf.name, max_bytes=1 << 26, max_pages=100)
    truth = [_norm(b) for b in (WORD_PDFS / f"{name}.txt").read_text().split("\n\n") if b.strip()]
    got = [_norm(block.text) for block in doc.blocks]
    assert got == truth


@pytest.mark.parametrize("name", NAMES)
def test_clauses_keep_their_numbers_and_wrapped_lines(name: str) -> None:
    pdf = WORD_PDFS / f"{name}.pdf"
    doc = extract(pdf.read_bytes(), pdf.name, max_bytes=1 << 26, max_pages=100)
    clauses = [b.text for b in doc.blocks if re.match(r"\d+\.\d+ ", b.text)]
    assert len(clauses) >= 28
    # Each clause is one sentence, ending with its full stop: nothing cut where a line wraps
    # or where a page breaks.
    assert all(c.endswith(".") and c.count(".") == 2 for c in clauses), [
        c for c in clauses if not c.endswith(".")
    ]
    assert not [
        b.text for b in doc.blocks if re.search(r"Version 1\.0|Page \d+ of|Controlled", b.text)
    ]
