"""Sources, roles, employees and BambooHR webhooks over real HTTP.

The query API runs in process under uvicorn on a free loopback port; the connector's real
``Scheduler`` polls the same data directory in a thread (as the connector process would), and
syncs a real pyftpdlib server. Nothing here needs the embedding model: searches are keyword.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from structlog.testing import capture_logs

from datatorag import wiring
from datatorag.domain.employees import Employee
from datatorag.settings import Settings
from datatorag_connector.bootstrap import build_scheduler
from datatorag_query_api.bootstrap import bootstrap, key_store
from tests.fixtures.file_servers import FTP_PASSWORD, ftp_uri, running_ftp_server
from tests.fixtures.stack import free_port

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
WEBHOOK_KEY = "bamboo-private-key-0123456789"


@dataclass
class Api:
    settings: Settings
    url: str
    admin: httpx.Client
    query: httpx.Client
    other_admin: httpx.Client  # another tenant's


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path / "data",
        port=free_port(),
        embedding_url=f"http://127.0.0.1:{free_port()}",  # nothing there: keyword search only
    )
    server = uvicorn.Server(
        uvicorn.Config(
            bootstrap(settings), host="127.0.0.1", port=settings.port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    keys = key_store(settings)
    url = f"http://127.0.0.1:{settings.port}"

    def client(tenant: str, role: str) -> httpx.Client:
        key = keys.create(tenant, role)  # type: ignore[arg-type]
        return httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30)

    try:
        yield Api(
            settings,
            url,
            client("acme", "admin"),
            client("acme", "query"),
            client("globex", "admin"),
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_for_sync(api: Api, source_id: str, count: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = api.admin.get(f"/v1/sources/{source_id}").json()
        if len(view["syncs"]) >= count or time.monotonic() > deadline:
            assert len(view["syncs"]) >= count, view
            return view
        time.sleep(0.2)


@pytest.fixture
def connector(api: Api) -> Iterator[None]:
    """The connector's scheduler polling the API's data directory, as its process would."""
    scheduler = build_scheduler(api.settings)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            scheduler.poll()
            stop.wait(0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=30)


# -- roles -----------------------------------------------------------------------------------


def test_a_query_key_searches_but_admin_routes_are_forbidden(api: Api) -> None:
    search = api.query.post("/v1/search", json={"query": "pension", "mode": "keyword"})
    assert search.status_code == 200, search.text
    for method, path, body in [
        ("GET", "/v1/documents", None),
        ("GET", "/v1/documents/doc_x", None),
        ("DELETE", "/v1/documents/doc_x", None),
        ("GET", "/v1/sources", None),
        ("POST", "/v1/sources", {"uri": "ftp://h/x"}),
        ("GET", "/v1/sources/src_0123456789abcdef", None),
        ("POST", "/v1/sources/src_0123456789abcdef/sync", None),
        ("DELETE", "/v1/sources/src_0123456789abcdef", None),
    ]:
        response = api.query.request(method, path, json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert response.headers["content-type"] == PROBLEM
        assert "admin" in response.json()["detail"]
    assert api.query.post("/v1/documents", files={"file": ("a.md", b"# A")}).status_code == 403
    assert api.admin.get("/v1/sources").status_code == 200


def test_the_openapi_document_declares_the_new_routes(api: Api) -> None:
    spec = httpx.get(f"{api.url}/openapi.json").json()
    paths = spec["paths"]
    assert {"get", "post"} <= set(paths["/v1/sources"])
    assert {"get", "delete"} <= set(paths["/v1/sources/{source_id}"])
    assert "403" in paths["/v1/sources"]["get"]["responses"]
    assert "404" in paths["/v1/sources/{source_id}"]["get"]["responses"]
    assert "401" in paths["/v1/webhooks/bamboohr/{source_id}"]["post"]["responses"]
    for route in ("/v1/search", "/v1/query"):
        assert "404" in paths[route]["post"]["responses"]  # an unknown employee
    employee = spec["components"]["schemas"]["EmployeeSpec"]["properties"]
    assert {"id", "country", "region", "employment_type", "department"} <= set(employee)


# -- sources ---------------------------------------------------------------------------------


def test_sources_sync_report_and_delete_through_the_api(
    api: Api, connector: None, tmp_path: Path
) -> None:
    root = tmp_path / "ftp"
    (root / "leave").mkdir(parents=True)
    (root / "leave" / "parental.md").write_text("# Parental leave\nSixteen weeks of pension.")
    (root / "expenses.md").write_text("# Expenses\nReceipts within 30 days.")
    with running_ftp_server(root) as port, capture_logs() as logs:
        created = api.admin.post("/v1/sources", json={"uri": ftp_uri(port), "metadata": {"a": "b"}})
        assert created.status_code == 201, created.text
        source = created.json()
        assert created.headers["location"] == f"/v1/sources/{source['id']}"
        assert source["kind"] == "ftp" and source["metadata"] == {"a": "b"}
        first = wait_for_sync(api, source["id"], 1)["syncs"][0]
        assert (first["status"], first["trigger"], first["scanned"], first["new"]) == (
            "succeeded",
            "schedule",
            2,
            2,
        )
        assert first["duration_s"] >= 0 and first["failed"] == []
        (root / "expenses.md").write_text("# Expenses\nReceipts within 60 days.")
        (root / "leave" / "parental.md").unlink()
        (root / "new.md").write_text("# New\nA new policy.")
        requested = api.admin.post(f"/v1/sources/{source['id']}/sync")
        assert requested.status_code == 202 and requested.json()["sync_requested_at"]
        view = wait_for_sync(api, source["id"], 2)
    second = view["syncs"][0]  # newest first
    assert (second["trigger"], second["new"], second["modified"], second["deleted"]) == (
        "request",
        1,
        1,
        1,
    )
    assert view["next_sync_at"] > second["started_at"] and view["sync_requested_at"] is None
    listed = api.admin.get("/v1/sources").json()["sources"]
    assert [s["id"] for s in listed] == [source["id"]]
    # Another tenant sees nothing of it, and cannot touch it.
    assert api.other_admin.get("/v1/sources").json() == {"sources": []}
    for method in ("GET", "DELETE"):
        assert api.other_admin.request(method, f"/v1/sources/{source['id']}").status_code == 404
    assert api.other_admin.post(f"/v1/sources/{source['id']}/sync").status_code == 404
    # The password never comes back, and is never logged or stored in clear.
    everything = json.dumps(listed) + json.dumps(view) + created.text + str(logs)
    assert FTP_PASSWORD not in everything
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert FTP_PASSWORD.encode() not in stored
    # Deleting the source takes its documents out at once.
    documents = api.admin.get("/v1/documents").json()["documents"]
    live = [d for d in documents if d["status"] != "deleted"]
    # Three: parental.md's removal waits on the chunks queue, for an embedder not running here.
    assert len(live) == 3
    deleted = api.admin.delete(f"/v1/sources/{source['id']}")
    assert deleted.status_code == 200 and deleted.json()["documents_removed"] == 3
    documents = api.admin.get("/v1/documents").json()["documents"]
    assert {d["status"] for d in documents} == {"deleted"}
    assert api.admin.get(f"/v1/sources/{source['id']}").status_code == 404
    assert api.admin.get("/v1/sources").json() == {"sources": []}


def test_a_source_that_cannot_be_opened_reports_why(api: Api, connector: None) -> None:
    closed_port = free_port()
    created = api.admin.post("/v1/sources", json={"uri": ftp_uri(closed_port)}).json()
    failed = wait_for_sync(api, created["id"], 1)["syncs"][0]
    assert failed["status"] == "failed" and failed["error"]
    assert FTP_PASSWORD not in json.dumps(failed)


@pytest.mark.parametrize(
    "body",
    [
        {"uri": "/etc"},
        {"uri": "file:///etc"},
        {"uri": "not a uri"},
        {"uri": "ftp://h/x", "tenant": "globex"},
        {"uri": ""},
    ],
)
def test_bad_sources_are_refused_clearly(api: Api, body: dict[str, Any]) -> None:
    response = api.admin.post("/v1/sources", json=body)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == PROBLEM
    assert api.admin.get("/v1/sources").json() == {"sources": []}


# -- employees -------------------------------------------------------------------------------


def test_an_unknown_employee_is_a_404_never_an_unfiltered_answer(api: Api) -> None:
    for path, body in [
        ("/v1/search", {"query": "pension", "mode": "keyword", "employee": {"id": "nobody"}}),
        ("/v1/query", {"question": "pension?", "employee": {"id": "nobody"}}),
    ]:
        response = api.query.post(path, json=body)
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == PROBLEM
        assert "nobody" in response.json()["detail"]


def test_a_known_employee_and_described_attributes_are_accepted(api: Api) -> None:
    wiring.employee_directory(api.settings).put("acme", Employee(id="e1", country="GB"))
    for employee in ({"id": "e1"}, {"country": "United Kingdom", "employment_type": "part-time"}):
        body = {"query": "pension", "mode": "keyword", "employee": employee}
        assert api.query.post("/v1/search", json=body).status_code == 200
    # The directory is per tenant: globex has no e1.
    body = {"query": "pension", "mode": "keyword", "employee": {"id": "e1"}}
    assert api.other_admin.post("/v1/search", json=body).status_code == 404
    bad = {"query": "pension", "employee": {"employment_type": "astronaut"}}
    assert api.query.post("/v1/search", json=bad).status_code == 422
    clash = {
        "query": "pension",
        "mode": "keyword",
        "filters": {"metadata.countries": "US"},
        "employee": {"country": "GB"},
    }
    assert api.query.post("/v1/search", json=clash).status_code == 400


# -- BambooHR webhooks -----------------------------------------------------------------------


def signed(body: bytes, timestamp: str, key: str = WEBHOOK_KEY) -> dict[str, str]:
    signature = hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()
    return {
        "X-BambooHR-Signature": signature,
        "X-BambooHR-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def test_bamboohr_webhooks_update_the_directory_at_once(api: Api) -> None:
    created = api.admin.post(
        "/v1/sources", json={"uri": "bamboohr://API_KEY@acme", "webhook_key": WEBHOOK_KEY}
    )
    assert created.status_code == 201 and WEBHOOK_KEY not in created.text
    hook = f"{api.url}/v1/webhooks/bamboohr/{created.json()['id']}"
    directory = wiring.employee_directory(api.settings)
    payload = {
        "employees": [
            {
                "id": "42",
                "action": "Updated",
                "changedFields": ["Country"],
                "fields": {
                    "Country": "United Kingdom",
                    "State": {"value": "eng"},
                    "Employment Status": "Part-Time",
                    "Department": "Engineering",
                    "Work Email": "ada@example.com",
                    "Pay rate": "100000 USD",  # never stored
                },
            }
        ]
    }
    body = json.dumps(payload).encode()
    now = str(int(time.time()))
    response = httpx.post(hook, content=body, headers=signed(body, now))
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 1, "removed": 0}
    assert directory.get("acme", "42") == Employee(
        id="42",
        email="ada@example.com",
        country="GB",
        region="ENG",
        employment_type="part-time",
        department="Engineering",
    )
    assert directory.get("globex", "42") is None
    # The same delivery again is a replay; so is an old one, even correctly signed.
    assert httpx.post(hook, content=body, headers=signed(body, now)).status_code == 401
    old = str(int(time.time()) - 3600)
    assert httpx.post(hook, content=body, headers=signed(body, old)).status_code == 401
    # A search for employee 42 now filters as a UK employee.
    search = {"query": "pension", "mode": "keyword", "employee": {"id": "42"}}
    assert api.query.post("/v1/search", json=search).status_code == 200
    # An update keeps what it does not mention; a deletion forgets the employee.
    moved = json.dumps({"employees": [{"id": "42", "fields": {"Country": "US"}}]}).encode()
    later = str(int(time.time()) + 1)
    assert httpx.post(hook, content=moved, headers=signed(moved, later)).status_code == 200
    assert directory.get("acme", "42") == Employee(
        id="42",
        email="ada@example.com",
        country="US",
        region="ENG",
        employment_type="part-time",
        department="Engineering",
    )
    gone = json.dumps({"employees": [{"id": "42", "action": "Deleted"}]}).encode()
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    response = httpx.post(hook, content=gone, headers=signed(gone, iso))
    assert response.json() == {"updated": 0, "removed": 1}
    assert directory.get("acme", "42") is None


def test_bad_webhooks_change_nothing(api: Api) -> None:
    created = api.admin.post(
        "/v1/sources", json={"uri": "bamboohr://API_KEY@acme", "webhook_key": WEBHOOK_KEY}
    ).json()
    without_key = api.admin.post("/v1/sources", json={"uri": "bamboohr://KEY@other"}).json()
    directory = wiring.employee_directory(api.settings)
    body = json.dumps({"employees": [{"id": "7", "fields": {"Country": "US"}}]}).encode()
    now = str(int(time.time()))
    cases = [
        (created["id"], body, signed(body, now, key="wrong-key")),
        (created["id"], body, {"X-BambooHR-Timestamp": now}),  # unsigned
        (created["id"], body + b" ", signed(body, now)),  # body changed after signing
        (created["id"], body, {**signed(body, now), "X-BambooHR-Timestamp": str(int(now) + 1)}),
        (without_key["id"], body, signed(body, now)),  # no webhook key: no webhooks
        ("src_0123456789abcdef", body, signed(body, now)),  # no such source
        ("../../etc", body, signed(body, now)),
    ]
    for source_id, content, headers in cases:
        response = httpx.post(
            f"{api.url}/v1/webhooks/bamboohr/{source_id}", content=content, headers=headers
        )
        assert response.status_code in (401, 404), (source_id, headers, response.text)
        assert response.headers["content-type"] == PROBLEM
    assert directory.get("acme", "7") is None
    malformed = b'{"employees": "not a list"}'
    response = httpx.post(
        f"{api.url}/v1/webhooks/bamboohr/{created['id']}",
        content=malformed,
        headers=signed(malformed, str(int(time.time()))),
    )
    assert response.status_code == 400 and response.headers["content-type"] == PROBLEM
    huge = b"x" * (1024 * 1024 + 1)
    response = httpx.post(
        f"{api.url}/v1/webhooks/bamboohr/{created['id']}",
        content=huge,
        headers=signed(huge, str(int(time.time()))),
    )
    assert response.status_code == 413
