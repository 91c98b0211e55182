"""``python -m datatorag_connector``: keep every registered source in sync, on an interval."""

from __future__ import annotations

import signal
import threading

from datatorag.errors import SourceError
from datatorag.log import configure, get_logger
from datatorag.settings import Settings
from datatorag_connector.bootstrap import build_syncer, source_registry
from datatorag_connector.sources import open_source

log = get_logger(__name__)


def main() -> None:
    configure("connector")
    settings = Settings()
    syncer, registry = build_syncer(settings), source_registry(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("connector.started", interval_s=settings.connector_interval_s)
    while not stop.wait(settings.connector_interval_s):
        for registered in registry.all():
            try:
                source = open_source(registered.uri, max_bytes=settings.max_document_bytes)
                try:
                    syncer.sync(source, registered.tenant, registered.metadata)
                finally:
                    source.close()
            except SourceError as err:
                log.warning("source.sync_failed", tenant=registered.tenant, reason=str(err))


if __name__ == "__main__":
    main()
