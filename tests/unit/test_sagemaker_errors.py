"""``SageMakerEmbeddings``' error mapping and request shape, against a named fake of SageMaker's
runtime API (``FakeSageMakerRuntime``): the real endpoint cannot be made to throttle or fail on
demand, and SageMaker cannot run here.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from datatorag.adapters.embeddings.sagemaker import (
    EmbeddingRequestRejected,
    SageMakerEmbeddings,
    sagemaker_runtime_client,
)
from datatorag.domain.errors import EmbeddingUnavailable, RetryableError
from datatorag.settings import Settings
from tests.contracts.embeddings import LEAVE_QUESTION

pytestmark = pytest.mark.unit


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: nothing listens


def test_an_unreachable_endpoint_raises_embedding_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = Settings(aws_endpoint_url=f"http://127.0.0.1:{_closed_port()}")
    adapter = SageMakerEmbeddings.from_settings(settings)
    started = time.monotonic()
    with pytest.raises(EmbeddingUnavailable, match="unreachable") as caught:
        adapter.embed([LEAVE_QUESTION])
    assert isinstance(caught.value, RetryableError)
    assert time.monotonic() - started < 30  # standard-mode backoff, not a hang


# -- error mapping, against a fake of SageMaker's runtime API -------------------------------------


class FakeSageMakerRuntime(ThreadingHTTPServer):
    """A FAKE of ``POST /endpoints/{name}/invocations`` that answers every call with one error.

    Errors follow SageMaker's REST-JSON shape (status, ``x-amzn-ErrorType`` header, ``message``)
    so botocore parses them as it parses the real service's; ``calls`` counts the attempts.
    """

    def __init__(self, status: int, code: str) -> None:
        super().__init__(("127.0.0.1", 0), _FakeHandler)
        self.status, self.code, self.calls = status, code, 0
        self.last: tuple[str, dict[str, str], Any] | None = None  # path, headers, JSON body

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FakeHandler(BaseHTTPRequestHandler):
    server: FakeSageMakerRuntime

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.last = (self.path, headers, json.loads(raw))
        self.server.calls += 1
        body = json.dumps({"message": f"fake {self.server.code}"}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-ErrorType", self.server.code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_runtime(request: pytest.FixtureRequest) -> Iterator[FakeSageMakerRuntime]:
    status, code = request.param
    server = FakeSageMakerRuntime(status, code)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("fake_runtime", "error", "attempts"),
    [
        ((503, "ServiceUnavailable"), EmbeddingUnavailable, 3),  # retried by botocore
        ((429, "ThrottlingException"), EmbeddingUnavailable, 3),
        ((424, "ModelError"), EmbeddingUnavailable, 1),  # the container failed: not retried
        ((400, "ValidationError"), EmbeddingRequestRejected, 1),
    ],
    indirect=["fake_runtime"],
    ids=["503", "throttled", "model-error", "validation"],
)
def test_errors_map_to_retryable_or_permanent(
    fake_runtime: FakeSageMakerRuntime,
    error: type[Exception],
    attempts: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    adapter = SageMakerEmbeddings.from_settings(Settings(aws_endpoint_url=fake_runtime.url))
    with pytest.raises(error, match=fake_runtime.code):
        adapter.embed(["text"])
    assert fake_runtime.calls == attempts


def test_the_client_follows_the_settings() -> None:
    settings = Settings(aws_region="eu-west-3", aws_endpoint_url="http://127.0.0.1:1")
    client = sagemaker_runtime_client(settings)
    assert client.meta.region_name == "eu-west-3"
    assert client.meta.endpoint_url == "http://127.0.0.1:1"
    retries = getattr(client.meta.config, "retries", None)  # set by Config, not in its stubs
    assert retries == {"mode": "standard", "total_max_attempts": 3}
    adapter = SageMakerEmbeddings.from_settings(settings)
    assert adapter.endpoint_name == settings.sagemaker_endpoint_name


@pytest.mark.parametrize("fake_runtime", [(400, "ValidationError")], indirect=True)
def test_the_request_is_the_invocations_contract(
    fake_runtime: FakeSageMakerRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = Settings(aws_endpoint_url=fake_runtime.url, sagemaker_endpoint_name="hr-embed")
    with pytest.raises(EmbeddingRequestRejected):
        SageMakerEmbeddings.from_settings(settings).embed(["Congé parental", "leave"])
    assert fake_runtime.last is not None
    path, headers, body = fake_runtime.last
    assert path == "/endpoints/hr-embed/invocations"
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "application/json"
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 ")  # signed by botocore
    assert body == {"inputs": ["Congé parental", "leave"], "truncate": True}
