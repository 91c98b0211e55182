"""Wires the query API from settings; adapters come from ``datatorag.wiring`` only."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from datatorag import wiring
from datatorag.domain.messages import DOCUMENTS_QUEUE
from datatorag.lifeline import end_with_parent
from datatorag.log import configure
from datatorag.memory import bound_malloc
from datatorag.ports import BlobStore, Embeddings, SearchIndex
from datatorag.settings import Settings
from datatorag.usecases.activity import ActivityRecorder
from datatorag.usecases.answers import Answerer
from datatorag.usecases.search import Searcher
from datatorag.usecases.sources import SourceCatalog
from datatorag_query_api.app import Services, create_app
from datatorag_query_api.keys import ApiKeyStore
from datatorag_query_api.sessions import PortalSessions
from datatorag_query_api.signing import SigningSecrets, derive_key
from datatorag_query_api.uploads import Uploads

# Under load (100 clients at once on 2 cores) a question's vector takes about 1.5 s at p99.
QUERY_EMBEDDING_TIMEOUT_S = 10.0


def key_store(settings: Settings, blobs: BlobStore | None = None) -> ApiKeyStore:
    """API keys live in the shared blob store, so every API process sees the same ones."""
    return ApiKeyStore(
        blobs or wiring.blob_store(settings), settings.api_key_pepper.get_secret_value()
    )


def signing_secrets(settings: Settings, blobs: BlobStore | None = None) -> SigningSecrets:
    pepper = settings.api_key_pepper.get_secret_value()
    return SigningSecrets(blobs or wiring.blob_store(settings), pepper)


def activity_recorder(settings: Settings, blobs: BlobStore | None = None) -> ActivityRecorder:
    """Employees are logged by a keyed hash whose key derives from the pepper."""
    pepper = settings.api_key_pepper.get_secret_value()
    return ActivityRecorder(
        wiring.activity_log(settings, blobs),
        derive_key(pepper, "datatorag employee ids"),
        timedelta(days=settings.activity_retention_days),
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
        reranker=wiring.reranker(settings),
        rerank_candidates=settings.rerank_candidates,
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
    keys = key_store(settings, blobs)
    return Services(
        index=index,
        embeddings=embeddings,
        keys=keys,
        activity=activity_recorder(settings, blobs),
        signing=signing_secrets(settings, blobs),
        sessions=PortalSessions(blobs, keys),
        searcher=searcher,
        answerer=build_answerer(settings, searcher),
        uploads=build_uploads(settings, index, blobs),
        sources=SourceCatalog(blobs, wiring.secret_store(settings, blobs)),
        directory=wiring.employee_directory(settings),
        max_document_bytes=settings.max_document_bytes,
        webhook_max_age_s=settings.webhook_max_age_s,
        search_threads=wiring.search_threads(settings),
    )


def bootstrap(settings: Settings) -> FastAPI:
    return create_app(build_services(settings))


def app_from_environment() -> FastAPI:
    """The app of one uvicorn worker process: each builds its own from the environment."""
    bound_malloc()  # before any thread: snapshots come and go (datatorag/memory.py)
    configure("query-api")
    end_with_parent()
    return bootstrap(Settings())
