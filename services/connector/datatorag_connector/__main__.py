"""``python -m datatorag_connector``: keep every registered source in sync.

Polls the registry every ``connector_poll_s`` for due sources and sync requests
(``datatorag_connector.scheduler``); each source is synced again every ``connector_interval_s``.
Between polls it applies the S3 event notifications of ``s3://...?queue=`` sources as they come.
"""

from __future__ import annotations

import signal
import threading

from datatorag.lifeline import end_with_parent
from datatorag.log import configure, get_logger
from datatorag.settings import Settings
from datatorag_connector.bootstrap import build_scheduler, build_syncer, source_catalog
from datatorag_connector.s3_events import S3EventWatcher

log = get_logger(__name__)


def main() -> None:
    configure("connector")
    end_with_parent()
    settings = Settings()
    scheduler = build_scheduler(settings)
    events = S3EventWatcher(
        build_syncer(settings), source_catalog(settings), max_bytes=settings.max_document_bytes
    )
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
        events.poll()  # S3 sources with an event queue: their changes now, not next round
        stop.wait(settings.connector_poll_s)


if __name__ == "__main__":
    main()
