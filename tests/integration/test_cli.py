"""The ``datatorag`` command as a newcomer meets it: output piped whole, failed documents retried
and documents deleted without the API."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from datatorag.settings import Settings
from datatorag_processor.extract import extract, plain_text

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "hr-policies"
TENANT = "qa-answers"  # as test_query_api: the examples are indexed once per session


def test_documents_prints_whole_ids_uris_and_titles_when_piped(running_stack):
    summary = running_stack.ingest(EXAMPLES, TENANT)
    assert summary["exit_code"] == 0, summary
    with running_stack.client(TENANT) as api:
        docs = api.get("/v1/documents").json()["documents"]
    result = running_stack.cli("documents", "--tenant", TENANT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split("\t") == ["doc_id", "status", "chunks", "title", "source_uri", "reason"]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    assert len(rows) == len(docs) == 6
    for doc in docs:
        row = rows[doc["doc_id"]]  # the whole id, however long the data dir's path
        assert row[3] == doc["title"] and row[4] == doc["source_uri"], row
        assert len(doc["source_uri"]) > 40  # longer than a cut column would show


def test_extract_prints_the_text_as_chunked_without_wrapping(running_stack):
    pdf = EXAMPLES / "sourcegraph" / "benefits.pdf"
    settings = Settings(_env_file=None)
    doc = extract(
        pdf.read_bytes(),
        pdf.name,
        max_bytes=settings.max_document_bytes,
        max_pages=settings.max_document_pages,
    )
    result = running_stack.cli("extract", str(pdf))
    assert result.returncode == 0, result.stderr
    assert result.stdout == plain_text(doc) + "\n"
    assert max(map(len, result.stdout.splitlines())) > 80  # it used to be wrapped at 80


def test_retry_and_delete_from_the_command_line(running_stack):
    tenant = "qa-cli-retry"
    with running_stack.client(tenant) as api:
        upload = api.post(
            "/v1/documents", files={"file": ("broken.pdf", b"%PDF-1.7\nnot really a pdf")}
        )
        assert upload.status_code == 202, upload.text
        url = upload.json()["status_url"]
        failed = _wait_status(api, url, "failed")

        retried = running_stack.cli("retry", "--tenant", tenant)
        assert retried.returncode == 0, retried.stderr
        assert failed["doc_id"] in retried.stdout
        again = api.get(url).json()
        assert again["status"] != "failed" or again["updated_at"] > failed["updated_at"]
        _wait_status(api, url, "failed")  # processed once more: still not a PDF

        indexed = api.post("/v1/documents", files={"file": ("keep.md", b"# Keep\n\nKept text.")})
        assert _wait_status(api, indexed.json()["status_url"], "indexed")
        skipped = running_stack.cli("retry", "--tenant", tenant, indexed.json()["doc_id"])
        assert skipped.returncode == 1 and "not failed" in skipped.stderr

        deleted = running_stack.cli("delete", "--tenant", tenant, indexed.json()["doc_id"])
        assert deleted.returncode == 0, deleted.stderr
        assert api.get(indexed.json()["status_url"]).json()["status"] == "deleted"
        search = api.post("/v1/search", json={"query": "Kept text", "mode": "keyword"})
        assert search.json()["hits"] == []
        unknown = running_stack.cli("delete", "--tenant", tenant, "doc_nope")
        assert unknown.returncode == 1 and "no document" in unknown.stderr


def _wait_status(api, url: str, wanted: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while (doc := api.get(url).json())["status"] != wanted:
        assert time.monotonic() < deadline, doc
        time.sleep(0.3)
    return doc
