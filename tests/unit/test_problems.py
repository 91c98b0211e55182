"""Which errors the query API shows the caller: typed caller mistakes are 400s that say what is
wrong; any other exception, a stray ``ValueError`` included, is a 500 that says nothing.

A minimal app with the API's own problem handlers, served by uvicorn over loopback HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from datatorag.domain.errors import InvalidKey, InvalidRequest
from datatorag.domain.filters import parse_filters
from datatorag_query_api import problems
from tests.fixtures.stack import free_port

pytestmark = pytest.mark.unit

SECRET = "internal detail: postgres://admin:hunter2@db"


def _app() -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.get("/filter")
    def bad_filter() -> None:
        parse_filters({"colour": "red"})

    @app.get("/invalid")
    def invalid() -> None:
        raise InvalidRequest("top_k must be at most 50")

    @app.get("/key")
    def key() -> None:
        raise InvalidKey("blob key '../x' has an empty, '.' or '..' segment")

    @app.get("/value")
    def value() -> None:
        raise ValueError(SECRET)

    return app


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    port = free_port()
    config = uvicorn.Config(_app(), host="127.0.0.1", port=port, log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        yield client
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/filter", "unknown filter field 'colour'"),
        ("/invalid", "top_k must be at most 50"),
        ("/key", "has an empty, '.' or '..' segment"),
    ],
)
def test_a_caller_mistake_is_a_400_that_says_what_is_wrong(
    api: httpx.Client, path: str, detail: str
) -> None:
    response = api.get(path)
    assert response.status_code == 400
    assert response.headers["content-type"] == problems.PROBLEM
    assert detail in response.json()["detail"]


def test_an_unexpected_value_error_is_a_500_that_shows_nothing(api: httpx.Client) -> None:
    response = api.get("/value")
    assert response.status_code == 500
    assert response.headers["content-type"] == problems.PROBLEM
    assert "hunter2" not in response.text and "postgres" not in response.text
    assert response.json()["detail"] == "see the server log"
