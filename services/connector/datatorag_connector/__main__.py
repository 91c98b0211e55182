"""``python -m datatorag_connector``: keep every registered source in sync.

Polls the registry every ``connector_poll_s`` for due sources and sync requests
(``datatorag_connector.scheduler``); each source is synced again every ``connector_interval_s``.
"""

from __future__ import annotations

import signal
import threading

from datatorag.log import configure, get_logger
from datatorag.settings import Settings
from datatorag_connector.bootstrap import build_scheduler

log = get_logger(__name__)


def main() -> None:
    configure("connector")
    settings = Settings()
    scheduler = build_scheduler(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info(
        "connector.started",
        interval_s=settings.connector_interval_s,
        poll_s=settings.connector_poll_s,
    )
    while not stop.is_set():
        scheduler.poll()
        stop.wait(settings.connector_poll_s)


if __name__ == "__main__":
    main()
