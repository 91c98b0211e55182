"""A scanned policy through the running stack: uploaded over HTTP, read by the processor's OCR
(the real Tesseract), searchable, and cited with its page, which hits and citations mark as OCR."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.corpus import LIBREOFFICE_HEADINGS
from tests.fixtures.scans import mixed_pdf
from tests.integration.test_query_api import wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUESTION = "Can I work four 10 hour days each week on a compressed schedule?"


def test_an_uploaded_scan_is_searchable_and_cited_with_its_ocr_page(
    running_stack, corpus_pdf: Callable[[str], Path]
) -> None:
    # Page 2 (compressed and flexible schedules) is a scan; pages 1, 3 and 4 keep their text.
    pdf = mixed_pdf(corpus_pdf(LIBREOFFICE_HEADINGS).read_bytes(), [1])
    with running_stack.client("ocr") as api:
        accepted = api.post(
            "/v1/documents", files={"file": ("work-schedules-scan.pdf", pdf, "application/pdf")}
        )
        assert accepted.status_code == 202, accepted.text
        doc = wait_for_status(api, accepted.json()["status_url"], "indexed", timeout=240)
        assert doc["page_count"] == 4

        hits = api.post(
            "/v1/search", json={"query": "compressed schedule four 10 hour days", "top_k": 5}
        ).json()["hits"]
        assert hits and 2 in hits[0]["pages"], hits[0]
        for hit in hits:  # a hit marks exactly its scanned pages
            assert hit["ocr_pages"] == [p for p in hit["pages"] if p == 2], hit

        answer = api.post("/v1/query", json={"question": QUESTION}).json()
        assert not answer["abstained"], answer
        cited = answer["citations"]
        assert any(2 in c["pages"] for c in cited), cited
        for citation in cited:
            assert citation["ocr_pages"] == [p for p in citation["pages"] if p == 2], citation
