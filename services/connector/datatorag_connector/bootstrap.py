"""Wires the connector from settings."""

from __future__ import annotations

from datatorag import wiring
from datatorag.domain.messages import CHUNKS_QUEUE, DOCUMENTS_QUEUE
from datatorag.settings import Settings
from datatorag_connector.registry import SourceRegistry
from datatorag_connector.sync import Syncer


def build_syncer(settings: Settings) -> Syncer:
    return Syncer(
        wiring.blob_store(settings),
        wiring.search_index(settings),
        wiring.queue(settings, DOCUMENTS_QUEUE),
        wiring.queue(settings, CHUNKS_QUEUE),
    )


def source_registry(settings: Settings) -> SourceRegistry:
    return SourceRegistry(wiring.blob_store(settings))
