"""``python -m datatorag_connector``: keep every registered source in sync, on an interval.

One source failing, however it fails, is logged and skipped: the other sources of the round and
the next round go on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import traceback

from datatorag.domain.errors import SourceError
from datatorag.lifeline import end_with_parent
from datatorag.log import configure, get_logger
from datatorag.settings import Settings
from datatorag_connector.bootstrap import build_syncer, source_registry
from datatorag_connector.registry import RegisteredSource, SourceRegistry
from datatorag_connector.sources import open_source, parse_location
from datatorag_connector.sources.base import scrub
from datatorag_connector.sync import Syncer

log = get_logger(__name__)

# Passwords the sources may read from the environment: kept out of logged errors.
_SECRET_ENV = ("DATATORAG_FTP_PASSWORD", "DATATORAG_SFTP_PASSWORD")


def main() -> None:
    configure("connector")
    end_with_parent()
    settings = Settings()
    syncer, registry = build_syncer(settings), source_registry(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("connector.started", interval_s=settings.connector_interval_s)
    while not stop.wait(settings.connector_interval_s):
        sync_round(syncer, registry, max_bytes=settings.max_document_bytes)


def sync_round(syncer: Syncer, registry: SourceRegistry, *, max_bytes: int) -> None:
    """Sync every registered source once; a failure is logged and the next source goes on."""
    try:
        registered_sources = registry.all()
    except Exception as err:  # noqa: BLE001 - the blob store is down: try again next round
        log.error("connector.registry_unreadable", error=f"{type(err).__name__}: {err}")
        return
    for registered in registered_sources:
        try:
            _sync_one(syncer, registered, max_bytes)
        except SourceError as err:  # sources word these for people, without credentials
            log.warning("source.sync_failed", **_where(registered), reason=str(err))
        except Exception as err:  # noqa: BLE001 - a bug or a library error: skip this source
            error, trace = _describe(err, registered)
            log.error("source.sync_crashed", **_where(registered), error=error, traceback=trace)


def _sync_one(syncer: Syncer, registered: RegisteredSource, max_bytes: int) -> None:
    source = open_source(registered.uri, max_bytes=max_bytes)
    try:
        syncer.sync(source, registered.tenant, registered.metadata)
    finally:
        source.close()


def _where(registered: RegisteredSource) -> dict[str, str]:
    where = {"tenant": registered.tenant, "source": registered.display_uri}
    with contextlib.suppress(SourceError):  # an unparsable URI has no id; its display names it
        where["source_id"] = parse_location(registered.uri).source_id
    return where


def _describe(err: Exception, registered: RegisteredSource) -> tuple[str, str]:
    """The error in one line, and its traceback, without any password the source was given.

    No frame locals (they hold the URI); messages are scrubbed as a library may echo a secret.
    """
    try:
        password = parse_location(registered.uri).password
    except SourceError:
        password = None
    secrets = [password, *(os.environ.get(name) for name in _SECRET_ENV)]
    trace = "".join(traceback.format_exception(err))
    return scrub(f"{type(err).__name__}: {err}", *secrets), scrub(trace, *secrets)


if __name__ == "__main__":
    main()
