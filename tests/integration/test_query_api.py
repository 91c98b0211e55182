"""The query API's answers, uploads and deletes, over real HTTP against the running stack.

Cases that need other settings than the stack's (a small upload limit, a retrieval threshold,
a failing answer model) run the same app in-process on its own loopback port, over the stack's
data directory and embedding endpoint.
"""

from __future__ import annotations

import json
import re
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from datatorag.domain.uris import upload_uri
from datatorag.settings import Settings
from datatorag.usecases.answers import ABSTENTION
from datatorag_query_api.bootstrap import (
    QUERY_EMBEDDING_TIMEOUT_S,
    bootstrap,
    build_answerer,
    key_store,
)
from datatorag_query_api.uploads import safe_filename
from tests.fixtures.stack import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "hr-policies"
TENANT = "qa-answers"
PARENTAL = "How many weeks of parental leave does Sourcegraph give?"
ESPRESSO = "What is the maintenance schedule for the office espresso machine?"
PROBLEM = "application/problem+json"
MARKER = re.compile(r"\[(\d+)\]")


def squash(text: str) -> str:
    return " ".join(text.split())


def wait_for_status(api: httpx.Client, url: str, wanted: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        doc = api.get(url).json()
        if doc["status"] == wanted or time.monotonic() > deadline:
            assert doc["status"] == wanted, doc
            return doc
        time.sleep(0.3)


def assert_grounded(body: dict[str, Any]) -> None:
    """Every citation is a retrieved hit, quoted verbatim; every sentence carries a marker."""
    assert not body["abstained"] and body["citations"], body
    hits_by_doc: dict[str, list[str]] = {}
    for hit in body["hits"]:
        hits_by_doc.setdefault(hit["doc_id"], []).append(squash(hit["text"]))
    for citation in body["citations"]:
        assert citation["doc_id"] in hits_by_doc
        assert citation["quote"], citation
        assert any(squash(citation["quote"]) in text for text in hits_by_doc[citation["doc_id"]])
    numbers = [int(n) for n in MARKER.findall(body["answer"])]
    assert set(numbers) == set(range(1, len(body["citations"]) + 1))
    assert body["answer"].rstrip().endswith("]")  # the last sentence is cited too
    for sentence in re.split(r"(?<=\])\s+(?=[^\[])", body["answer"]):
        assert MARKER.search(sentence), sentence


@pytest.fixture(scope="module")
def samples(running_stack) -> dict:
    summary = running_stack.ingest(EXAMPLES, TENANT)
    assert summary["exit_code"] == 0 and summary["indexed"] == 6, summary
    return summary


@pytest.fixture(scope="module")
def api(running_stack, samples) -> Iterator[httpx.Client]:
    with running_stack.client(TENANT) as client:
        yield client


class InProcessApi:
    """The query API app built by ``bootstrap`` with other settings, served by uvicorn."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = f"http://127.0.0.1:{settings.port}"
        config = uvicorn.Config(
            bootstrap(settings), host="127.0.0.1", port=settings.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> InProcessApi:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def client(self, tenant: str) -> httpx.Client:
        key = key_store(self.settings).create(tenant)
        return httpx.Client(base_url=self.url, headers={"X-API-Key": key}, timeout=30)


def in_process_settings(running_stack, **changes: Any) -> Settings:
    return running_stack.settings.model_copy(update={"port": free_port(), **changes})


# -- /v1/query ---------------------------------------------------------------------------------


QUESTIONS = (
    "How many days of paid time off do PostHog employees get?",
    "Can I carry over unused PTO at Sourcegraph?",
    "How is travel reimbursed at 18F?",
    "What annual leave do 18F staff accrue?",
    "What benefits does Sourcegraph offer?",
)


def test_query_answers_with_citations_from_the_hits(api):
    response = api.post("/v1/query", json={"question": PARENTAL})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "answer",
        "abstained",
        "confidence",
        "citations",
        "hits",
        "answer_id",
        "keyword_only",
    }
    assert body["keyword_only"] is None  # the index and the questions share a space
    assert 0.0 < body["confidence"] <= 1.0
    assert len(body["hits"]) == 5  # top_k defaults to 5
    assert_grounded(body)
    assert any(
        c["source_uri"].endswith("sourcegraph/parental-leave.pdf") for c in body["citations"]
    )
    assert re.search(r"\bweeks?\b", body["answer"], re.I), body["answer"]
    keys = {"doc_id", "title", "source_uri", "pages", "quote", "chunk_id", "start", "end"}
    assert all(set(c) == keys | {"applies_to", "ocr_pages"} for c in body["citations"])
    # The corpus PDFs have text layers: nothing was read by OCR.
    assert all(c["ocr_pages"] == [] for c in body["citations"])
    passages = {h["chunk_id"]: h["text"] for h in body["hits"]}
    for c in body["citations"]:  # the offsets let a page highlight the quote in its passage
        assert passages[c["chunk_id"]][c["start"] : c["end"]] == c["quote"]


def test_query_latency_and_grounding_over_several_questions(api):
    timings = []
    for question in QUESTIONS:  # distinct questions: each one embeds its query
        started = time.perf_counter()
        response = api.post("/v1/query", json={"question": question})
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        body = response.json()
        if not body["abstained"]:
            assert_grounded(body)
    print(
        f"\n/v1/query latency over {len(timings)} distinct questions: median "
        f"{1000 * statistics.median(timings):.0f} ms, max {1000 * max(timings):.0f} ms "
        f"({[round(1000 * t) for t in timings]})"
    )


def test_query_filters_restrict_hits_and_citations(api):
    docs = api.get("/v1/documents").json()["documents"]
    posthog = next(d["doc_id"] for d in docs if d["source_uri"].endswith("posthog/time-off.pdf"))
    response = api.post(
        "/v1/query",
        json={
            "question": "How much time off can I take?",
            "top_k": 3,
            "filters": {"doc_id": posthog},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["hits"] and {h["doc_id"] for h in body["hits"]} == {posthog}
    assert {c["doc_id"] for c in body["citations"]} <= {posthog}


def test_query_with_an_invalid_filter_or_body_is_a_problem(api):
    bad = [
        ({"question": "leave", "filters": {"colour": "red"}}, 400),
        ({"question": ""}, 422),
        ({"question": "leave", "top_k": 0}, 422),
        ({"question": "leave", "tenant": "other"}, 422),
        ({"top_k": 3}, 422),
    ]
    for body, status in bad:
        response = api.post("/v1/query", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["status"] == status


def test_retrieval_confidence_gates_answers(running_stack, samples):
    answerer = build_answerer(running_stack.settings)
    related = answerer.confidence(TENANT, PARENTAL)
    unrelated = answerer.confidence(TENANT, ESPRESSO)
    print(f"\nretrieval confidence: related {related:.3f}, unrelated {unrelated:.3f}")
    assert 0.0 < unrelated < related <= 1.0
    answerer.min_retrieval_score = (related + unrelated) / 2
    off_topic = answerer.answer(TENANT, ESPRESSO)
    assert off_topic.abstained and off_topic.answer == ABSTENTION
    assert off_topic.citations == [] and off_topic.hits  # the hits are still shown
    assert not answerer.answer(TENANT, PARENTAL).abstained
    answerer.min_retrieval_score = 0.99  # nothing in HR handbooks is this close
    strict = answerer.answer(TENANT, PARENTAL)
    assert strict.abstained and strict.citations == [] and strict.hits
    # Filters count: no chunk of a missing document can give confidence.
    assert answerer.confidence(TENANT, PARENTAL, {"doc_id": "doc_none"}) == 0.0


def test_off_topic_question_abstains_over_http_with_a_threshold(running_stack, samples):
    answerer = build_answerer(running_stack.settings)
    threshold = (answerer.confidence(TENANT, PARENTAL) + answerer.confidence(TENANT, ESPRESSO)) / 2
    settings = in_process_settings(running_stack, abstain_below=threshold)
    with InProcessApi(settings) as server, server.client(TENANT) as api:
        body = api.post("/v1/query", json={"question": ESPRESSO}).json()
        assert body["abstained"] and body["answer"] == ABSTENTION
        assert body["citations"] == [] and body["hits"]
        assert_grounded(api.post("/v1/query", json={"question": PARENTAL}).json())


def test_answer_model_failures_are_503_and_502(running_stack, samples, fake_openai_server):
    settings = in_process_settings(
        running_stack, generator_backend="openai", openai_base_url=fake_openai_server.url + "/v1"
    )
    with InProcessApi(settings) as server, server.client(TENANT) as api:
        fake_openai_server.fail(503, "server_error")
        busy = api.post("/v1/query", json={"question": PARENTAL})
        assert busy.status_code == 503 and busy.headers["content-type"] == PROBLEM
        assert busy.headers["retry-after"]
        fake_openai_server.fail(400, "invalid_request_error")
        refused = api.post("/v1/query", json={"question": PARENTAL})
        assert refused.status_code == 502 and refused.headers["content-type"] == PROBLEM
        assert refused.json()["title"] == "Answer generator failed"


def test_an_unreachable_embedding_endpoint_is_a_503_naming_no_host(running_stack, samples):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = in_process_settings(running_stack, embedding_url=closed)
    with InProcessApi(settings) as server, server.client(TENANT) as api:
        down = api.post("/v1/search", json={"query": "a question never asked before"})
        assert down.status_code == 503 and down.headers["content-type"] == PROBLEM
        assert down.headers["retry-after"]
        assert "127.0.0.1" not in down.text and closed not in down.text
        keyword = api.post("/v1/search", json={"query": "parental leave", "mode": "keyword"})
        assert keyword.status_code == 200 and keyword.json()["hits"]  # needs no model


def test_a_stalled_embedding_endpoint_fails_a_question_within_seconds(running_stack, samples):
    with socket.create_server(("127.0.0.1", 0)) as stalled:  # accepts connections, never answers
        url = f"http://127.0.0.1:{stalled.getsockname()[1]}"
        settings = in_process_settings(running_stack, embedding_url=url)
        with InProcessApi(settings) as server, server.client(TENANT) as api:
            started = time.monotonic()
            response = api.post("/v1/search", json={"query": "stalled endpoint question"})
            waited = time.monotonic() - started
    assert response.status_code == 503 and response.headers["retry-after"]
    assert QUERY_EMBEDDING_TIMEOUT_S <= waited < 2 * QUERY_EMBEDDING_TIMEOUT_S  # not a minute


def test_cli_ask_prints_the_same_answer_as_the_api(running_stack, api):
    result = running_stack.cli("ask", PARENTAL, "--tenant", TENANT, "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert_grounded(body)
    answered = api.post("/v1/query", json={"question": PARENTAL}).json()
    assert answered.pop("answer_id")  # the API logs its answers; the operator's CLI does not
    assert body == answered
    text = running_stack.cli("ask", PARENTAL, "--tenant", TENANT, "--top-k", "3")
    assert text.returncode == 0, text.stderr
    assert "[1]" in text.stdout and "sourcegraph/parental-leave.pdf" in text.stdout


# -- uploads and deletes -----------------------------------------------------------------------


WOMBAT_V1 = (
    b"# Wombat sabbatical\n\nEvery employee may take a wombat sabbatical of seven weeks after "
    b"five years of service. The sabbatical is paid in full.\n"
)
WOMBAT_V2 = (
    b"# Wombat sabbatical\n\nEvery employee may take a wombat sabbatical of nine weeks after "
    b"four years of service. The quokka committee approves each request.\n"
)


def keyword(api: httpx.Client, query: str) -> list[dict]:
    response = api.post("/v1/search", json={"query": query, "mode": "keyword"})
    assert response.status_code == 200, response.text
    return response.json()["hits"]


def upload(api: httpx.Client, name: str, data: bytes, **fields: str) -> httpx.Response:
    return api.post("/v1/documents", files={"file": (name, data, "text/markdown")}, data=fields)


def test_upload_versions_and_delete_a_document(running_stack):
    with running_stack.client("qa-uploads") as api:
        first = upload(
            api,
            "../../secret/wombat.md",
            WOMBAT_V1,
            title="Wombat leave",
            tags="leave, animals",
            metadata='{"country": "AU"}',
        )
        assert first.status_code == 202, first.text
        accepted = first.json()
        assert accepted["outcome"] == "added" and accepted["status"] == "fetched"
        assert first.headers["location"] == accepted["status_url"]
        doc = wait_for_status(api, accepted["status_url"], "indexed")
        assert doc["source_id"] == "upload" and doc["source_uri"] == "upload://qa-uploads/wombat.md"
        assert doc["metadata"]["tags"] == ["leave", "animals"]
        assert doc["metadata"]["country"] == "AU"
        hits = keyword(api, "wombat sabbatical")
        assert hits and {h["doc_id"] for h in hits} == {accepted["doc_id"]}
        tagged = api.post(
            "/v1/search", json={"query": "sabbatical", "filters": {"metadata.tags": "animals"}}
        )
        assert {h["doc_id"] for h in tagged.json()["hits"]} == {accepted["doc_id"]}
        answer = api.post("/v1/query", json={"question": "How long is the wombat sabbatical?"})
        assert_grounded(answer.json())
        assert "seven weeks" in answer.json()["answer"]

        same = upload(api, "wombat.md", WOMBAT_V1)
        assert same.status_code == 200 and same.json()["outcome"] == "unchanged"
        assert api.get(accepted["status_url"]).json()["version"] == doc["version"]

        changed = upload(api, "wombat.md", WOMBAT_V2)
        assert changed.status_code == 202 and changed.json()["outcome"] == "changed"
        assert changed.json()["doc_id"] == accepted["doc_id"]
        new = wait_for_status(api, accepted["status_url"], "indexed")
        assert new["version"] != doc["version"]
        assert keyword(api, "quokka") and not keyword(api, "paid in full")

        removed = api.delete(accepted["status_url"])
        assert removed.status_code == 200, removed.text
        assert removed.json()["status_url"] == accepted["status_url"]
        assert removed.json()["status"] == "deleted"  # at once, not after a queue round trip
        assert api.get(accepted["status_url"]).json()["status"] == "deleted"
        assert keyword(api, "wombat") == []
        again = api.delete(accepted["status_url"])
        assert again.status_code == 200 and again.json()["status"] == "deleted"


def test_an_upload_right_after_a_delete_is_kept(running_stack):
    """A delete used to be queued: the same bytes uploaded again before the embedder ran were
    "unchanged" and then deleted, and a new version was deleted once indexed."""
    with running_stack.client("qa-redo") as api:
        first = upload(api, "wombat.md", WOMBAT_V1)
        url = first.json()["status_url"]
        wait_for_status(api, url, "indexed")
        for data in (WOMBAT_V1, WOMBAT_V2):
            assert api.delete(url).status_code == 200
            again = upload(api, "wombat.md", data)
            assert again.status_code == 202 and again.json()["outcome"] == "added", again.text
            wait_for_status(api, url, "indexed")
        assert keyword(api, "quokka")


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\leave.pdf", "leave.pdf"),
        ("/abs/path/Policy 2024.pdf", "Policy 2024.pdf"),
        ("..", "upload"),
        ("", "upload"),
        (None, "upload"),
        ("...hidden.md", "hidden.md"),
        ("tab\tand\x00nul\x1b[31m.md", "tabandnul[31m.md"),
        ("right\u202eto-left\u200b.md", "rightto-left.md"),
        ("Congés été — 2024.pdf", "Congés été — 2024.pdf"),
        ("a" * 500 + ".pdf", "a" * 196 + ".pdf"),
        ("trailing dots...", "trailing dots"),
    ],
)
def test_upload_filenames_are_reduced_to_a_safe_name(raw, safe):
    assert safe_filename(raw) == safe
    assert "/" not in upload_uri("t", safe_filename(raw)).removeprefix("upload://t/")


def test_upload_rejects_bad_forms(running_stack):
    with running_stack.client("qa-uploads") as api:
        cases = [
            (
                api.post("/v1/documents", content=b"plain", headers={"content-type": "text/plain"}),
                415,
            ),
            (
                api.post("/v1/documents", data={"title": "no file"}, files={"x": ("a.md", b"x")}),
                422,
            ),
            (upload(api, "empty.md", b""), 422),
            (upload(api, "a.md", b"# A\n\ntext", metadata="[1, 2]"), 422),
            (upload(api, "a.md", b"# A\n\ntext", metadata="{nope"), 422),
            # Only what a filter can match; these were 500s, orphaned blobs or stuck documents.
            *(
                (upload(api, "a.md", b"# A\n\ntext", metadata=bad), 422)
                for bad in (
                    '{"a": ' + "[" * 5000 + "]" * 5000 + "}",
                    '{"a": ' + "[" * 230 + "]" * 230 + "}",
                    '{"a": {"b": 1}}',
                    '{"a": NaN}',
                    '{"a": ' + "9" * 5000 + "}",
                    '{"bad key!": 1}',
                )
            ),
            (upload(api, "a.md", b"# A\n\ntext", tags=",".join(f"t{i}" for i in range(60))), 422),
        ]
        for response, status in cases:
            assert response.status_code == status, response.text
            assert response.headers["content-type"] == PROBLEM
        assert api.delete("/v1/documents/doc_missing").status_code == 404


def test_unknown_routes_and_methods_are_problems(running_stack):
    with running_stack.client("qa-uploads") as api:
        missing = api.get("/v1/nowhere")
        assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
        wrong = api.put("/v1/query", json={})
        assert wrong.status_code == 405 and wrong.headers["content-type"] == PROBLEM
        assert "POST" in wrong.headers["allow"]
        assert wrong.json()["status"] == 405


def test_uploads_over_the_limit_are_413(running_stack):
    limit = 4096
    settings = in_process_settings(running_stack, max_document_bytes=limit)
    with InProcessApi(settings) as server, server.client("qa-limits") as api:
        at_limit = upload(api, "fits.md", b"# Fits\n\n" + b"a" * (limit - 8))
        assert at_limit.status_code == 202, at_limit.text
        over = upload(api, "over.md", b"# Over\n\n" + b"a" * limit)
        assert over.status_code == 413 and over.headers["content-type"] == PROBLEM
        huge = upload(api, "huge.md", b"a" * (2 * 1024 * 1024))  # refused by Content-Length
        assert huge.status_code == 413

        def chunked() -> Iterator[bytes]:  # no Content-Length: refused while reading
            yield (
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="s.md"\r\n'
                b"Content-Type: text/markdown\r\n\r\n"
            )
            for _ in range(64):
                yield b"a" * 16384
            yield b"\r\n--b--\r\n"

        streamed = api.post(
            "/v1/documents",
            content=chunked(),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert streamed.status_code == 413 and streamed.headers["content-type"] == PROBLEM
        names = {d["source_uri"] for d in api.get("/v1/documents").json()["documents"]}
        assert names == {"upload://qa-limits/fits.md"}


def test_every_response_carries_a_request_id(api, running_stack):
    given = api.post("/v1/search", json={"query": "vacation"}, headers={"X-Request-ID": "r-1"})
    assert given.headers["X-Request-ID"] == "r-1"  # the caller's id, for tracing across hops
    made = {api.get("/v1/documents").headers["X-Request-ID"] for _ in range(2)}
    refused = api.post("/v1/search", json={}).headers["X-Request-ID"]  # a 422 problem too
    assert len(made | {refused}) == 3
    # The access-log line names the tenant too (the key check runs in a thread of its own).
    log = running_stack.settings.data_dir / "logs" / "query-api.log"
    deadline = time.monotonic() + 10
    while not (lines := [line for line in log.read_text().splitlines() if '"r-1"' in line]):
        assert time.monotonic() < deadline, "no access-log line for request r-1"
        time.sleep(0.1)
    access = json.loads(lines[-1])
    assert access["event"] == "request" and access["tenant"] == TENANT
