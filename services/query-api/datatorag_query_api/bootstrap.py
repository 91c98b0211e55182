"""Wires the query API from settings."""

from __future__ import annotations

from fastapi import FastAPI

from datatorag import wiring
from datatorag.settings import Settings
from datatorag_query_api.app import create_app
from datatorag_query_api.keys import ApiKeyStore


def key_store(settings: Settings) -> ApiKeyStore:
    return ApiKeyStore(settings.data_dir / "keys.db", settings.api_key_pepper.get_secret_value())


def bootstrap(settings: Settings) -> FastAPI:
    return create_app(
        wiring.search_index(settings), wiring.embeddings(settings), key_store(settings)
    )
