"""Wires the query API from settings; adapters come from ``datatorag.wiring`` only."""

from __future__ import annotations

from fastapi import FastAPI

from datatorag import wiring
from datatorag.domain.messages import DOCUMENTS_QUEUE
from datatorag.lifeline import end_with_parent
from datatorag.log import configure
from datatorag.ports import BlobStore, Embeddings, SearchIndex
from datatorag.settings import Settings
from datatorag.usecases.answers import Answerer
from datatorag.usecases.search import Searcher
from datatorag_query_api.app import Services, create_app
from datatorag_query_api.keys import ApiKeyStore
from datatorag_query_api.uploads import Uploads

# Under load (100 clients at once on 2 cores) a question's vector takes about 1.5 s at p99.
QUERY_EMBEDDING_TIMEOUT_S = 10.0


def key_store(settings: Settings, blobs: BlobStore | None = None) -> ApiKeyStore:
    """API keys live in the shared blob store, so every API process sees the same ones."""
    return ApiKeyStore(
        blobs or wiring.blob_store(settings), settings.api_key_pepper.get_secret_value()
    )


def query_embeddings(settings: Settings) -> Embeddings:
    """Embeddings for questions: one short text each, so a stalled endpoint fails the request
    within seconds (a 503 with Retry-After) instead of holding it for a minute."""
    return wiring.embeddings(settings, timeout_s=QUERY_EMBEDDING_TIMEOUT_S)


def build_answerer(settings: Settings, searcher: Searcher | None = None) -> Answerer:
    """The /v1/query pipeline; ``datatorag ask`` builds it here too, so both answer alike."""
    if searcher is None:
        searcher = Searcher(wiring.search_index(settings), query_embeddings(settings))
    return Answerer(
        searcher,
        wiring.answer_generator(settings),
        min_retrieval_score=settings.abstain_below,
    )


def build_uploads(settings: Settings, index: SearchIndex, blobs: BlobStore) -> Uploads:
    return Uploads(blobs, index, wiring.queue(settings, DOCUMENTS_QUEUE))


def build_services(
    settings: Settings, index: SearchIndex | None = None, embeddings: Embeddings | None = None
) -> Services:
    index = index or wiring.search_index(settings)
    embeddings = embeddings or query_embeddings(settings)
    blobs = wiring.blob_store(settings)
    searcher = Searcher(index, embeddings)
    return Services(
        index=index,
        embeddings=embeddings,
        keys=key_store(settings, blobs),
        searcher=searcher,
        answerer=build_answerer(settings, searcher),
        uploads=build_uploads(settings, index, blobs),
        max_document_bytes=settings.max_document_bytes,
        search_threads=wiring.search_threads(settings),
    )


def bootstrap(settings: Settings) -> FastAPI:
    return create_app(build_services(settings))


def app_from_environment() -> FastAPI:
    """The app of one uvicorn worker process: each builds its own from the environment."""
    configure("query-api")
    end_with_parent()
    return bootstrap(Settings())
