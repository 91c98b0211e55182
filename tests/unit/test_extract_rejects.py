"""Bad input is refused with a reason a person can act on (DocumentRejected is permanent)."""

from __future__ import annotations

import io
import time
import zipfile

import pypdfium2 as pdfium
import pytest

from datatorag.domain.errors import DocumentRejected, PermanentError
from datatorag_processor.extract import extract, plain_text
from tests.fixtures.corpus import BadDocuments

pytestmark = pytest.mark.unit

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_pages": 1000}


def _reason(data: bytes, filename: str, **limits: int) -> str:
    with pytest.raises(DocumentRejected) as caught:
        extract(data, filename, **{**LIMITS, **limits})
    assert isinstance(caught.value, PermanentError)  # workers dead-letter it at once
    return str(caught.value)


def test_the_source_pdf_itself_is_fine(bad_documents: BadDocuments) -> None:
    doc = extract(bad_documents.source_pdf, "role-changes.pdf", **LIMITS)
    assert doc.page_count == 5 and doc.blocks


def test_empty_file() -> None:
    assert "empty (0 bytes)" in _reason(b"", "folder/handbook.pdf")


def test_truncated_pdf(bad_documents: BadDocuments) -> None:
    assert "damaged or truncated" in _reason(bad_documents.truncated_pdf, "role-changes.pdf")


def test_password_protected_pdf(bad_documents: BadDocuments) -> None:
    # It really is encrypted: pdfium opens it with the password and not without.
    with pdfium.PdfDocument(bad_documents.encrypted_pdf, password="s3cret") as doc:
        assert len(doc) == 5
    assert "password-protected" in _reason(bad_documents.encrypted_pdf, "role-changes.pdf")


def test_scanned_pdf_without_text_layer(bad_documents: BadDocuments) -> None:
    reason = _reason(bad_documents.scanned_pdf, "scan.pdf")
    assert "no text layer" in reason and "2 pages" in reason and "OCR" in reason


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [("png", "a PNG image"), ("text", "plain text")],
)
def test_mislabelled_pdf(bad_documents: BadDocuments, content: str, looks_like: str) -> None:
    data = bad_documents.png if content == "png" else b"Minutes of the HR meeting\n"
    reason = _reason(data, "minutes.pdf")
    assert reason.startswith("not a PDF:")
    assert f"is {looks_like} although its name ends in .pdf" in reason


def test_pdf_named_docx(bad_documents: BadDocuments) -> None:
    reason = _reason(bad_documents.source_pdf, "contract.docx")
    assert "not a Word document" in reason and "is a PDF" in reason


def test_damaged_docx(bad_documents: BadDocuments) -> None:
    assert "Word document is damaged" in _reason(bad_documents.damaged_docx, "policy.docx")


def test_over_max_bytes(bad_documents: BadDocuments) -> None:
    reason = _reason(bad_documents.source_pdf, "role-changes.pdf", max_bytes=10_000)
    assert "more than the limit of 9.8 kB" in reason and "DATATORAG_MAX_DOCUMENT_BYTES" in reason


def test_over_max_pages_is_refused_before_parsing(bad_documents: BadDocuments) -> None:
    reason = _reason(bad_documents.source_pdf, "role-changes.pdf", max_pages=4)
    assert "has 5 pages, more than the limit of 4" in reason
    # A large page count is refused without reading the pages: a 3000-page PDF of blank pages.
    big = pdfium.PdfDocument.new()
    for _ in range(3000):
        big.new_page(612, 792)
    out = io.BytesIO()
    big.save(out)
    started = time.perf_counter()
    assert "has 3000 pages" in _reason(out.getvalue(), "big.pdf", max_pages=1000)
    assert time.perf_counter() - started < 1.0


def test_pdf_without_any_text() -> None:
    blank = pdfium.PdfDocument.new()
    blank.new_page(612, 792)
    out = io.BytesIO()
    blank.save(out)
    assert "no text layer" in _reason(out.getvalue(), "blank.pdf")


@pytest.mark.parametrize(
    ("data", "name", "detected"),
    [
        (bytes(range(256)) * 4, "export.bin", "binary data of an unknown kind"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 40, "backup.gz", "a gzip archive (application/gzip)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40, "old.doc", "old Microsoft Office"),
    ],
)
def test_unknown_binary_formats_name_what_they_are(data: bytes, name: str, detected: str) -> None:
    reason = _reason(data, name)
    assert detected in reason and "supported formats are" in reason


def test_zip_that_is_not_a_word_document() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("photos/a.txt", "x")
    assert "is a ZIP archive" in _reason(out.getvalue(), "photos.zip")


def test_document_with_only_whitespace() -> None:
    assert "contains no text" in _reason(b"  \n\n\t \n", "empty-notes.txt")


def _nested(depth: int) -> bytes:
    return b"<div>" * depth + b"<p>Be respectful at work.</p>" + b"</div>" * depth


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"<html><body>" + _nested(600) + b"</body></html>", "conduct.html"),
        (b"# Conduct\n\n" + _nested(600) + b"\n", "conduct.md"),  # raw HTML inside Markdown
    ],
)
def test_html_nested_too_deeply_is_refused_at_once(data: bytes, name: str) -> None:
    # Refused as such (permanent), not a RecursionError retried five times.
    assert "nested too deeply to read (more than 256 levels" in _reason(data, name)


def test_html_nested_deeply_within_the_limit_is_read() -> None:
    doc = extract(b"<html><body>" + _nested(250) + b"</body></html>", "conduct.html", **LIMITS)
    assert plain_text(doc) == "Be respectful at work."


def _minimal_docx(paragraphs: int) -> bytes:
    """A valid Word package of identical paragraphs: its XML packs about 300 times."""
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    para = "<w:p><w:r><w:t>Employees accrue paid leave monthly.</w:t></w:r></w:p>"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            "[Content_Types].xml",
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        zf.writestr(
            "_rels/.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Target="word/document.xml" Type="http://schemas.'
            'openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
            "</Relationships>",
        )
        zf.writestr(
            "word/document.xml",
            f'<w:document xmlns:w="{w}"><w:body>{para * paragraphs}</w:body></w:document>',
        )
    return out.getvalue()


def _unpacked(data: bytes) -> int:
    return sum(info.file_size for info in zipfile.ZipFile(io.BytesIO(data)).infolist())


def test_docx_that_unpacks_past_the_limit_is_refused_before_parsing() -> None:
    data = _minimal_docx(100_000)  # 7 MB of XML in 30 kB: python-docx takes ~20 s over it
    assert len(data) < 50_000 and _unpacked(data) > 6 * 1024 * 1024
    started = time.perf_counter()
    reason = _reason(data, "handbook.docx", max_bytes=4 * 1024 * 1024)
    assert time.perf_counter() - started < 1.0
    assert "Word document unpacks to 6." in reason and "more than the limit of 4.0 MB" in reason
    assert "DATATORAG_MAX_DOCUMENT_BYTES" in reason


def test_docx_that_unpacks_to_just_the_limit_is_read() -> None:
    data = _minimal_docx(100)
    doc = extract(data, "handbook.docx", max_bytes=_unpacked(data), max_pages=1000)
    assert len(doc.blocks) == 100
