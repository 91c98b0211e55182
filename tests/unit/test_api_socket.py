"""The API's listening socket for several worker processes (see ``listening_socket``)."""

from __future__ import annotations

import socket

import pytest
import uvicorn

from datatorag_query_api.__main__ import listening_socket

pytestmark = pytest.mark.unit


def test_worker_connections_do_not_wait_for_delayed_acks() -> None:
    config = uvicorn.Config("datatorag_query_api.bootstrap:app_from_environment", port=0)
    with listening_socket(config) as listener:
        port = listener.getsockname()[1]
        listener.listen()
        with socket.create_connection(("127.0.0.1", port)):
            accepted, _ = listener.accept()  # what a worker's event loop gets
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
