"""``python -m datatorag_query_api``: the HTTP API in ``DATATORAG_API_WORKERS`` processes."""

import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from datatorag.lifeline import children_end_with_me, end_with_parent
from datatorag.log import configure
from datatorag.settings import Settings


def listening_socket(config: uvicorn.Config) -> socket.socket:
    """uvicorn's socket for its worker processes, with Nagle's algorithm off.

    uvicorn binds it with protocol 0, so asyncio does not set TCP_NODELAY on the connections
    it accepts, and each response then waits ~40 ms for the client's delayed ACK (measured:
    44 ms instead of 1 ms per request). Accepted connections inherit the listener's option.
    """
    sock = config.bind_socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def server_config(settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        "datatorag_query_api.bootstrap:app_from_environment",
        factory=True,
        workers=settings.api_workers,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=10,
        timeout_keep_alive=settings.api_keep_alive_s,
    )


def main() -> None:
    configure("query-api")
    end_with_parent()
    config = server_config(Settings())
    if config.workers == 1:
        uvicorn.Server(config).run()
    else:
        children_end_with_me()  # the worker processes: uvicorn's spawn gives them this environment
        Multiprocess(config, sockets=[listening_socket(config)]).run()


if __name__ == "__main__":
    main()
