"""Wires the connector from settings."""

from __future__ import annotations

import os

from datatorag import wiring
from datatorag.domain.messages import CHUNKS_QUEUE, DOCUMENTS_QUEUE
from datatorag.settings import Settings
from datatorag.usecases.sources import SourceCatalog
from datatorag_connector.scheduler import Scheduler
from datatorag_connector.sync import Syncer

# Passwords the sources may read from the environment: kept out of logged errors.
SECRET_ENV = ("DATATORAG_FTP_PASSWORD", "DATATORAG_SFTP_PASSWORD")


def build_syncer(settings: Settings) -> Syncer:
    return Syncer(
        wiring.blob_store(settings),
        wiring.search_index(settings),
        wiring.queue(settings, DOCUMENTS_QUEUE),
        wiring.queue(settings, CHUNKS_QUEUE),
    )


def source_catalog(settings: Settings) -> SourceCatalog:
    blobs = wiring.blob_store(settings)
    return SourceCatalog(blobs, wiring.secret_store(settings, blobs))


def build_scheduler(settings: Settings) -> Scheduler:
    syncer = build_syncer(settings)
    return Scheduler(
        catalog=source_catalog(settings),
        syncer=syncer,
        index=syncer.index,
        directory=wiring.employee_directory(settings),
        interval_s=settings.connector_interval_s,
        max_bytes=settings.max_document_bytes,
        secret_env=tuple(os.environ.get(name) for name in SECRET_ENV),
    )
