"""The API keeps an idle connection open longer than the load balancer in front of it does.

The ALB reuses an idle pooled connection for up to its idle timeout (60 s); AWS asks targets to
keep theirs longer, else the target closes it just as a request arrives and the ALB answers 502.
uvicorn's default (5 s) did exactly that. Real HTTP against the API's own entrypoint, over one
raw socket so that nothing reconnects behind the test's back.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from datatorag.settings import Settings
from tests.fixtures.stack import free_port

pytestmark = pytest.mark.integration

UVICORN_DEFAULT_S = 5
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[int]:
    """The query API as ``python -m datatorag_query_api`` runs it (its default two worker
    processes), with the default keep-alive; yields its port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATATORAG_")}
    env |= {
        "DATATORAG_DATA_DIR": str(tmp_path / "data"),
        "DATATORAG_PORT": str(port),
        "DATATORAG_EMBEDDING_PORT": str(free_port()),  # /healthz needs no endpoint
        "HF_HUB_OFFLINE": "1",
    }
    log = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "datatorag_query_api"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
                    assert b" 200 " in exchange(probe)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((tmp_path / "api.log").read_text(errors="replace")[-3000:])
                time.sleep(0.3)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def exchange(conn: socket.socket) -> bytes:
    """One request on ``conn`` and its whole response (b"" when the server had closed it)."""
    try:
        conn.sendall(REQUEST)
        response = b""
        while b"\r\n\r\n" not in response or not response.endswith(b"}"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            response += chunk
        return response
    except (BrokenPipeError, ConnectionResetError):
        return b""


def test_the_default_outlasts_the_load_balancers_idle_timeout() -> None:
    assert Settings(_env_file=None).api_keep_alive_s > 60  # type: ignore[call-arg]


def test_a_connection_idle_past_uvicorns_default_still_serves_its_next_request(api: int) -> None:
    with socket.create_connection(("127.0.0.1", api), timeout=10) as conn:
        first = exchange(conn)
        assert first.startswith(b"HTTP/1.1 200 ") and b"connection: close" not in first.lower()
        time.sleep(UVICORN_DEFAULT_S + 1.5)  # what the ALB does with a pooled connection
        second = exchange(conn)
        assert second.startswith(b"HTTP/1.1 200 "), second
        assert second.endswith(b'{"status":"ok"}')
