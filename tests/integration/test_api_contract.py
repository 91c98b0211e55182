"""The API as an outsider meets it: no redirect from the Host header, a truthful OpenAPI
document, readiness that follows the model, docs that work offline, bounded error bodies."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.stack import free_port
from tests.integration.test_query_api import InProcessApi, in_process_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "hr-policies"
TENANT = "qa-answers"  # as test_query_api: the examples are indexed once per session
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def api(running_stack) -> Iterator[httpx.Client]:
    summary = running_stack.ingest(EXAMPLES, TENANT)
    assert summary["exit_code"] == 0 and summary["indexed"] == 6, summary
    with running_stack.client(TENANT) as client:
        yield client


def test_no_redirect_is_built_from_the_host_header(api):
    response = api.post(
        "/v1/search/",
        json={"query": "parental leave"},
        headers={"Host": "evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 404 and response.headers["content-type"] == PROBLEM
    assert "location" not in response.headers and "evil.example" not in response.text


def test_a_query_of_only_spaces_is_a_422(api):
    for route, body in (("/v1/search", {"query": "  \t\n "}), ("/v1/query", {"question": "   "})):
        response = api.post(route, json=body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM


def test_a_404_does_not_echo_a_huge_id(api):
    huge = "x" * 12_000
    for method in ("GET", "DELETE"):
        response = api.request(method, f"/v1/documents/{huge}")
        assert response.status_code == 404 and response.headers["content-type"] == PROBLEM
        assert huge[:200] not in response.text and len(response.content) < 1000


def test_allow_names_every_method_of_the_path(api):
    collection = api.put("/v1/documents")
    assert collection.status_code == 405
    assert {"GET", "POST"} <= set(collection.headers["allow"].replace(" ", "").split(","))
    one = api.post("/v1/documents/doc_x")
    assert one.status_code == 405
    assert {"GET", "DELETE"} <= set(one.headers["allow"].replace(" ", "").split(","))


def test_the_openapi_document_declares_the_errors_as_served(api):
    spec = api.get("/openapi.json").json()
    declared = {
        ("/v1/search", "post"): {"400", "401", "422", "503"},
        ("/v1/query", "post"): {"400", "401", "422", "502", "503"},
        ("/v1/documents", "post"): {"400", "401", "413", "415", "422"},
        ("/v1/documents", "get"): {"401", "422"},
        ("/v1/documents/{doc_id}", "get"): {"401", "404"},
        ("/v1/documents/{doc_id}", "delete"): {"401", "404"},
    }
    for (path, method), statuses in declared.items():
        responses = spec["paths"][path][method]["responses"]
        assert statuses <= set(responses), (path, method, sorted(responses))
        for status in statuses:
            assert list(responses[status]["content"]) == [PROBLEM], (path, method, status)
    upload = spec["paths"]["/v1/documents"]["post"]["requestBody"]["content"]
    assert upload["multipart/form-data"]["schema"]["properties"]["metadata"]["type"] == "object"
    filters = spec["components"]["schemas"]["SearchRequest"]["properties"]["filters"]
    assert "400" in filters["description"] and "metadata.countries" in filters["description"]
    # And what it declares is what a 401 is.
    refused = httpx.post(f"{api.base_url}/v1/search", json={"query": "leave"})
    assert refused.status_code == 401 and refused.headers["content-type"] == PROBLEM


def test_docs_load_without_internet(running_stack):
    page = httpx.get(f"{running_stack.url}/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert assets and not [a for a in assets if "://" in a], assets  # nothing from a CDN
    for asset in assets:
        response = httpx.get(f"{running_stack.url}{asset}")
        assert response.status_code == 200 and response.content, asset
    assert "/openapi.json" in page.text


def test_docs_render_in_a_browser_that_reaches_no_other_host(running_stack):
    """Headless Chromium with every other host unresolvable: Swagger UI renders the API."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is installed by scripts/system-packages.sh"
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=20000",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--dump-dom",
            f"{running_stack.url}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    dom = result.stdout
    assert 'class="swagger-ui' in dom, result.stderr[-2000:]
    assert "opblock-summary-path" in dom and "/v1/search" in dom, dom[-2000:]  # ran the JS


def test_the_readme_filter_examples_match_documents(api):
    readme = (REPO / "README.md").read_text()
    examples = re.findall(r'`(\{"metadata\.[a-z_]+": [^`]+\})`', readme)
    assert examples
    for example in examples:
        filters = json.loads(example)
        if "metadata.tags" in filters:
            continue  # tags are the source's own (ingest --tag): the examples carry none
        response = api.post("/v1/search", json={"query": "leave", "filters": filters})
        assert response.status_code == 200 and response.json()["hits"], example


class Forwarder:
    """A TCP relay to the real embedding endpoint that can be cut, as a crashed endpoint is."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                s.close()

    def cut(self) -> None:
        for s in (self.server, *self.sockets):  # shutdown wakes the blocked accept() and recv()
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def test_readyz_follows_the_embedding_endpoint_and_names_no_host(running_stack):
    closed = f"http://127.0.0.1:{free_port()}"
    with InProcessApi(in_process_settings(running_stack, embedding_url=closed)) as server:
        never_ready = httpx.get(f"{server.url}/readyz")
        assert never_ready.status_code == 503 and never_ready.headers["content-type"] == PROBLEM
        assert "127.0.0.1" not in never_ready.text and closed not in never_ready.text
    relay = Forwarder(running_stack.settings.embedding_port)
    with InProcessApi(in_process_settings(running_stack, embedding_url=relay.url)) as server:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        relay.cut()  # the endpoint dies
        deadline = time.monotonic() + 10
        while (down := httpx.get(f"{server.url}/readyz", timeout=15)).status_code == 200:
            assert time.monotonic() < deadline, "/readyz stayed 200 with the endpoint gone"
            time.sleep(0.2)
        assert down.status_code == 503 and relay.url not in down.text
