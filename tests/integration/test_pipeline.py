"""End to end on the embedded default: real processes, the real model, real PDFs, real HTTP."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "hr-policies"


@pytest.fixture(scope="module")
def demo(running_stack, tmp_path_factory):
    """The bundled samples ingested into tenant `demo`."""
    summary = running_stack.ingest(EXAMPLES, "demo")
    assert summary["exit_code"] == 0, summary
    return summary


def test_the_samples_are_all_indexed(demo):
    assert demo["added"] == 6 and demo["indexed"] == 6 and demo["failed"] == []


def test_search_returns_cited_passages_over_http(running_stack, demo):
    with running_stack.client("demo") as api:
        for mode in ("hybrid", "vector", "keyword"):
            response = api.post(
                "/v1/search",
                json={
                    "query": "How many weeks of parental leave does Sourcegraph give?",
                    "top_k": 5,
                    "mode": mode,
                },
            )
            assert response.status_code == 200, response.text
            hits = response.json()["hits"]
            assert hits, mode
            top = hits[0]
            assert set(top) >= {
                "doc_id",
                "title",
                "source_uri",
                "pages",
                "heading",
                "text",
                "score",
            }
            assert any(h["source_uri"].endswith("sourcegraph/parental-leave.pdf") for h in hits[:3])
            assert all(isinstance(p, int) and p >= 1 for h in hits for p in h["pages"])


def test_documents_api_shows_status_and_metadata(running_stack, demo):
    with running_stack.client("demo") as api:
        docs = api.get("/v1/documents").json()["documents"]
        assert len(docs) == 6 and {d["status"] for d in docs} == {"indexed"}
        one = api.get(f"/v1/documents/{docs[0]['doc_id']}").json()
        assert one["chunk_count"] > 0 and one["page_count"] >= 1
        missing = api.get("/v1/documents/doc_nope")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"


def test_requests_without_a_valid_key_are_refused(running_stack, demo):
    import httpx

    for headers in ({}, {"X-API-Key": "dtr_000000000000_" + "a" * 43}, {"X-API-Key": "junk"}):
        r = httpx.post(f"{running_stack.url}/v1/search", json={"query": "leave"}, headers=headers)
        assert r.status_code == 401
        assert r.json()["title"] == "Unauthorized"


def test_another_tenant_sees_nothing_of_demo(running_stack, demo):
    with running_stack.client("demo") as api:
        doc_id = api.get("/v1/documents").json()["documents"][0]["doc_id"]
    with running_stack.client("other") as api:
        assert api.get("/v1/documents").json()["documents"] == []
        assert api.get(f"/v1/documents/{doc_id}").status_code == 404
        for mode in ("hybrid", "vector", "keyword"):
            r = api.post("/v1/search", json={"query": "parental leave", "mode": mode})
            assert r.status_code == 200 and r.json()["hits"] == []


def test_cli_search_matches_the_api_hit_shape(running_stack, demo):
    import json

    result = running_stack.cli(
        "search", "time off at PostHog", "--tenant", "demo", "--top-k", "3", "--json"
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    hits = body["hits"]
    assert body["keyword_only"] is None  # the stack's model embedded both: one space
    assert len(hits) == 3
    assert any(h["source_uri"].endswith("posthog/time-off.pdf") for h in hits)


def test_changed_files_replace_their_old_version_and_removed_files_leave(running_stack, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    policy = folder / "remote-work.md"
    policy.write_text(
        "# Remote work\n\nEmployees may work remotely on Fridays from a zebra farm.\n"
    )
    (folder / "dress.md").write_text("# Dress code\n\nBusiness casual, except on quokka days.\n")
    first = running_stack.ingest(folder, "sync")
    assert first["exit_code"] == 0 and first["added"] == 2

    def keyword(query: str) -> list[dict]:
        with running_stack.client("sync") as api:
            return api.post("/v1/search", json={"query": query, "mode": "keyword"}).json()["hits"]

    assert keyword("zebra")
    again = running_stack.ingest(folder, "sync")
    assert again["unchanged"] == 2 and again["added"] == again["changed"] == 0

    policy.write_text(
        "# Remote work\n\nEmployees may work remotely on Mondays from a llama ranch.\n"
    )
    (folder / "dress.md").unlink()
    changed = running_stack.ingest(folder, "sync")
    assert changed["changed"] == 1 and changed["removed"] == 1, changed
    deadline = time.monotonic() + 60
    while keyword("quokka") and time.monotonic() < deadline:  # removal is asynchronous
        time.sleep(0.5)
    assert keyword("llama") and not keyword("zebra") and not keyword("quokka")
    # A removed document keeps no files: neither its raw versions nor its chunk sets.
    blobs = running_stack.settings.data_dir / "blobs" / "tenants" / "sync"

    def stored() -> set[str]:  # the doc ids that have files under raw/ or chunks/
        return {path.parent.name for path in blobs.rglob("*") if path.is_file()}

    while len(stored()) > 1 and time.monotonic() < deadline:  # files go just after the chunks
        time.sleep(0.1)
    assert len(stored()) == 1, stored()  # only the remote-work policy's


def test_killing_workers_mid_batch_loses_and_duplicates_nothing(
    running_stack, corpus_dir, tmp_path
):
    folder = tmp_path / "batch"
    pdfs = sorted((corpus_dir / "pdf" / "libreoffice" / "18f").glob("*.pdf"))[:12]
    folder.mkdir()
    for pdf in pdfs:
        shutil.copy(pdf, folder / pdf.name)
    result = running_stack.cli("ingest", str(folder), "--tenant", "crash")
    assert result.returncode == 0, result.stderr
    for name in ("processor", "embedder-client", "processor", "embedder-client"):
        time.sleep(1.5)
        running_stack.stack.restart(name)  # SIGKILL mid-batch, then start again
    summary = running_stack.ingest(folder, "crash")
    assert summary["exit_code"] == 0, summary
    assert summary["indexed"] == len(pdfs)
    db = sqlite3.connect(running_stack.settings.data_dir / "index" / "crash.db")
    rows = db.execute(
        "SELECT doc_id, COUNT(*), COUNT(DISTINCT ordinal) FROM chunks GROUP BY doc_id"
    )
    counts = {doc: (n, distinct) for doc, n, distinct in rows}
    recorded = dict(db.execute("SELECT doc_id, chunk_count FROM documents"))
    assert len(counts) == len(pdfs)
    for doc_id, (n, distinct) in counts.items():
        assert n == distinct == recorded[doc_id]  # no duplicated chunk


def _children(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, just not reaped yet


def test_a_killed_api_restarts_without_leaving_its_worker_processes_behind(running_stack):
    api = running_stack.stack.processes["query-api"]
    workers = _children(api.pid)
    # uvicorn's worker processes, and multiprocessing's resource tracker
    assert len(workers) > running_stack.settings.api_workers > 1
    running_stack.stack.restart("query-api")  # SIGKILL, as a crash of the supervisor would
    deadline = time.monotonic() + 10
    while any(map(_running, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    # An orphaned worker would keep the port and serve with stale code.
    assert not any(map(_running, workers))
    running_stack.stack.wait_ready(timeout=60)
    response = running_stack.client("restart").get("/v1/documents")
    assert response.status_code == 200, response.text
