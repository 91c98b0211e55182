"""Bad input through the running stack: each ends failed with its reason, none blocks the rest."""

from __future__ import annotations

import io

import pytest

from datatorag.adapters.queue.sqlite import SqliteQueue
from datatorag.domain.messages import DOCUMENTS_QUEUE

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def many_pages(pdf: bytes, pages: int) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    reader = PdfReader(io.BytesIO(pdf))
    while len(writer.pages) < pages:
        for page in reader.pages:
            writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_each_bad_document_fails_with_a_reason_and_the_good_ones_are_indexed(
    running_stack, bad_documents, tmp_path
):
    folder = tmp_path / "drop"
    folder.mkdir()
    files = {
        "good.pdf": bad_documents.source_pdf,
        "notes.md": b"# Expenses\n\nReceipts are due within 30 days of purchase.\n",
        "empty.pdf": b"",
        "truncated.pdf": bad_documents.truncated_pdf,
        "encrypted.pdf": bad_documents.encrypted_pdf,
        "scanned-blank.pdf": bad_documents.blank_scan_pdf,  # readable scans are OCR'd
        "mislabelled.pdf": bad_documents.png,
        "damaged.docx": bad_documents.damaged_docx,
        "huge.pdf": many_pages(bad_documents.source_pdf, 61),  # the stack allows 60 pages
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)

    summary = running_stack.ingest(folder, "bad")

    assert summary["exit_code"] == 1  # not everything was indexed
    assert summary["indexed"] == 2
    reasons = {f["source_uri"].rsplit("/", 1)[-1]: f["reason"] for f in summary["failed"]}
    assert set(reasons) == set(files) - {"good.pdf", "notes.md"}
    expected_words = {
        "empty.pdf": "empty",
        "truncated.pdf": "damaged",
        "encrypted.pdf": "password",
        "scanned-blank.pdf": "blank",
        "mislabelled.pdf": "not a PDF",
        "damaged.docx": "damaged",
        "huge.pdf": "pages",
    }
    for name, word in expected_words.items():
        assert word.lower() in reasons[name].lower(), (name, reasons[name])

    dead = SqliteQueue(
        running_stack.settings.data_dir / "queues.db",
        DOCUMENTS_QUEUE,
        max_receives=99,
        visibility_timeout=30,
    ).dead_letters()
    assert len(dead) >= len(expected_words)  # permanent failures are dead-lettered with reasons
    with running_stack.client("bad") as api:
        hits = api.post("/v1/search", json={"query": "receipts due", "mode": "keyword"}).json()
        assert hits["hits"] and hits["hits"][0]["source_uri"].endswith("notes.md")
