"""The portal's API side over real HTTP: the question log, feedback, analytics, the audit log,
employee tokens and the session's CSRF rule."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest

from datatorag.domain.employees import Employee
from datatorag_query_api.bootstrap import signing_secrets
from tests.fixtures.stack import RunningStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "hr-policies"
QUESTION = "How many weeks of parental leave do I get? Mail me at jane.doe@acme.com"


@pytest.fixture(scope="module")
def tenant(running_stack: RunningStack) -> str:
    summary = running_stack.ingest(EXAMPLES / "sourcegraph", "portal-api")
    assert summary["exit_code"] == 0, summary
    return "portal-api"


def test_an_answer_is_logged_masked_with_its_cited_versions(
    running_stack: RunningStack, tenant: str
) -> None:
    with running_stack.client(tenant) as client:
        answer = client.post("/v1/query", json={"question": QUESTION}).json()
        assert answer["answer_id"]
        feedback = {"helpful": False, "comment": "call +1 415 555 0100, it was unclear"}
        sent = client.post(f"/v1/answers/{answer['answer_id']}/feedback", json=feedback)
        assert sent.status_code == 204
        audit = client.get("/v1/audit").json()
        analytics = client.get("/v1/analytics").json()
        exported = client.get("/v1/analytics.csv")
    logged = next(a for a in audit["answers"] if a["answer_id"] == answer["answer_id"])
    assert "jane.doe" not in logged["question"] and "[email]" in logged["question"]
    cited = {c["doc_id"]: c["version"] for c in logged["cited"]}
    assert cited and set(cited) == {c["doc_id"] for c in answer["citations"]}
    for hit in answer["hits"]:
        if hit["doc_id"] in cited:
            assert hit["chunk_id"].split(":")[1] == cited[hit["doc_id"]]
    assert analytics["total"] >= 1 and analytics["unhelpful"] >= 1
    assert any("[phone]" in c[2] for c in analytics["comments"])
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert any(r["feedback"] == "not helpful" for r in rows)


def test_feedback_never_reaches_another_tenants_answer(
    running_stack: RunningStack, tenant: str
) -> None:
    with running_stack.client(tenant) as client:
        answer_id = client.post("/v1/query", json={"question": "PTO?"}).json()["answer_id"]
    with running_stack.client("portal-api-other") as other:
        sent = other.post(f"/v1/answers/{answer_id}/feedback", json={"helpful": True})
        assert sent.status_code == 404
        assert other.get("/v1/audit").json()["answers"] == []


def test_employee_tokens_read_but_are_refused_when_forged(
    running_stack: RunningStack, tenant: str
) -> None:
    signing = signing_secrets(running_stack.settings)
    kid, secret = signing.create(tenant)
    token = signing.mint(tenant, kid, secret, Employee("E7", country="US"), ttl_s=300)
    bearer = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=running_stack.url, timeout=60) as client:
        answer = client.post("/v1/query", json={"question": "parental leave"}, headers=bearer)
        assert answer.status_code == 200 and answer.json()["hits"]
        assert client.post("/v1/search", json={"query": "leave"}, headers=bearer).status_code == 200
        # Read scope only: an employee token manages nothing.
        assert client.get("/v1/documents", headers=bearer).status_code == 401
        forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        refused = client.post(
            "/v1/query", json={"question": "x"}, headers={"Authorization": f"Bearer {forged}"}
        )
        assert refused.status_code == 401
        # A token signed for this tenant cannot read another tenant's documents.
        other_kid, other_secret = signing.create("portal-api-other")
        theirs = signing.mint("portal-api-other", other_kid, other_secret, Employee("E8"), 300)
        hits = client.post(
            "/v1/search",
            json={"query": "parental leave"},
            headers={"Authorization": f"Bearer {theirs}"},
        ).json()["hits"]
        assert hits == []


def test_a_session_cookie_needs_the_csrf_token_to_change_anything(
    running_stack: RunningStack, tenant: str
) -> None:
    with httpx.Client(base_url=running_stack.url, timeout=60) as client:
        login = client.get("/portal/login")
        csrf = login.cookies["dtr_login"]
        signed_in = client.post(
            "/portal/login", data={"api_key": running_stack.key(tenant), "csrf": csrf}
        )
        assert signed_in.status_code == 303 and "dtr_session" in client.cookies
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert client.get("/v1/documents").status_code == 200  # reading needs no token
        upload = {"file": ("note.txt", b"Bereavement leave is five days.", "text/plain")}
        assert client.post("/v1/documents", files=upload).status_code == 403
        page = client.get("/portal/documents").text
        token = page.split('name="csrf-token" content="')[1].split('"')[0]
        accepted = client.post("/v1/documents", files=upload, headers={"X-CSRF-Token": token})
        assert accepted.status_code == 202
