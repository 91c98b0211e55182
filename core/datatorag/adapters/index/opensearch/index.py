"""``SearchIndex`` on OpenSearch (Amazon OpenSearch Service 2.x and 3.x), through opensearch-py.

Indices (``prefix`` defaults to ``datatorag-``):

- ``<prefix>chunks-<tenant>``: one index per tenant for its chunks. Isolation holds by
  construction: a search names exactly one tenant's index, so no query can forget a tenant
  filter, and a tenant is dropped with its index. A shared index with a tenant field would save a
  shard per small tenant, but HR corpora are tenants of thousands of documents, not millions of
  tiny tenants, and one primary shard per tenant keeps BM25 statistics per tenant too.
- ``<prefix>documents``: every tenant's document records (no vectors, small), ``_id`` =
  ``<tenant>:<doc_id>``. Shared to save shards; every search on it filters on the ``tenant`` term
  and every get names the tenant in the id.
- ``<prefix>manifests``: one document per tenant (``_id`` = tenant) saying which *generation* of
  each document's chunks is visible. Stored only (``dynamic: false``): never searched.

Vectors: a ``knn_vector`` field, HNSW on the ``lucene`` engine, ``cosinesimil`` space, m=16,
ef_construction=128 (https://docs.opensearch.org/latest/mappings/supported-field-types/knn-methods-engines/).
Lucene over faiss because per-tenant indices are small (thousands to a few hundred thousand
vectors), where lucene's efficient filtering (2.4+) switches to an exact search over the filtered
set, needs no native memory and no circuit breaker tuning; nmslib is deprecated. faiss (with
``innerproduct`` on the unit vectors) is the choice past millions of vectors per tenant. Lucene
ignores ``ef_search`` and searches with ef = k, so a query asks for k = max(top_k, 100) and
returns ``size`` = top_k: recall of a 100-candidate beam at any top_k. Its score for
``cosinesimil`` is (2 - (1 - cos)) / 2 (https://docs.opensearch.org/latest/mappings/supported-field-types/knn-spaces/);
hits report the cosine itself, as the port promises.

Text: BM25 runs on ``search_text``, the chunk's title twice, its heading and its text in one
field: the embedded index's BM25 with column weights (2, 1, 1) counts weighted term
frequencies against one document length, and so does one combined field (per-field BM25 summed
by a ``multi_match`` would rank a short chunk with fewer matches above a longer one with more).
``title`` and ``heading`` are also text fields of their own; ``text`` is stored, not indexed
twice. The analyzer, ``english_folded``, is the standard tokenizer, English possessive
stemming, lowercase, ASCII folding and the Porter stemmer, like the embedded index's
words (``datatorag.adapters.index.sqlite.bm25``). It has no stop filter: the adapter drops
the embedded index's stop words from queries (so a query made only of stop words still
matches) and sends the words as a ``match`` query (never query syntax).

Filters have the embedded index's semantics (``datatorag.domain.filters``) and run as
bool ``filter`` clauses *inside* the knn query (efficient filtering, lucene or faiss engines:
https://docs.opensearch.org/latest/vector-search/filter-search-knn/efficient-knn-filtering/)
and inside the BM25 bool query, so ``top_k`` counts only matching chunks. Document fields are
keywords; a metadata value is copied onto its chunks by type: strings to ``meta_text.<key>``
(keyword), numbers and booleans to ``meta_number.<key>`` (double; true is 1, as in Python and
SQLite), and every non-null key to ``meta_keys``. Arrays and objects are kept nowhere, so they
match no filter, as in the embedded index; typed fields also mean a key that holds a string in
one document and a number in another never makes a mapping conflict.

Atomic version swap. OpenSearch has no multi-document transactions, so visibility goes through
one document per tenant, the manifest, whose single-document write is the commit point:

1. ``replace_chunks`` reads the document record and refuses a stale version (writes nothing).
2. It bulk-indexes the chunks (batches of 500) under a fresh ``generation`` id, the last batch
   with ``refresh=wait_for``: they are searchable before anything refers to them.
3. It marks the record indexed with ``active_generation`` = that generation, conditional on the
   record's ``_seq_no``/``_primary_term`` (optimistic concurrency); if the version changed
   meanwhile it deletes its chunks and returns False.
4. It copies the record's ``active_generation`` into the manifest, again conditional on the
   manifest's ``_seq_no``; the generation it replaces is listed as retired, with the time.

Every search first reads the manifest (a real-time get) and filters chunks on
``generation in <active generations>``. Guarantee: a search shows, for each document, the chunks
of exactly one generation, all of them, namely the one the manifest named when the search read
it; never two generations of one document, never a generation before step 4 made it visible.
Retired generations stay in the index for ``retire_grace_s`` (default 60 s) and are deleted by
query afterwards (by the next write of that tenant, or ``purge``); a search that takes longer
than half the grace is retried, so its generations cannot vanish under it as long as the
writers' clocks agree within half the grace. Chunks of swaps that crashed before step 3 are
never visible and ``purge`` deletes them after an hour; a swap that stopped between steps 3 and 4
is finished by the next write of that document or by ``purge``. Step 4 always writes what the
record says *now*, so concurrent swaps of one document converge on the record's latest
generation.

Limits: the manifest is rewritten on every swap and read by every search; at ~60 bytes a
document it suits tenants up to tens of thousands of documents (a terms lookup on the manifest
would save shipping it for larger ones). ``max_terms_count`` (65 536) bounds the active
documents per tenant. A search returns at most 10 000 hits (knn's maximum ``k``).

Hybrid search is the query service's RRF over ``keyword_search`` and ``vector_search``;
``ensure_hybrid_pipeline`` creates the server-side alternative, a search pipeline with the
``normalization-processor`` for a ``hybrid`` query. The adapter sends no HTTP DELETE (the
connector's and processor's IAM roles may not have ``es:ESHttpDelete``): deletes are
``_delete_by_query`` POSTs.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConflictError, NotFoundError, RequestError, TransportError
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

from datatorag.adapters.index.sqlite.index import (
    BM25_WEIGHTS,
    MAX_QUERY_TERMS,
    REPLACE_META,
    STOP_WORDS,
    chunk_vectors,
    unit_vector,
)
from datatorag.domain.errors import DatatoRAGError, PermanentError, RetryableError
from datatorag.domain.filters import Condition, parse_filters
from datatorag.domain.models import (
    METADATA_KEY,
    DocumentRecord,
    DocumentStatus,
    IndexedChunk,
    SearchHit,
    utcnow,
)
from datatorag.domain.tenants import validate_tenant
from datatorag.ports import Filters
from datatorag.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "datatorag-"

# Vectors (see the module docstring).
VECTOR_FIELD = "embedding"
ENGINE = "lucene"
SPACE_TYPE = "cosinesimil"
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
EF_SEARCH = 100  # lucene's beam is k: ask for at least this many candidates
MAX_K = 10_000  # the knn query's maximum k, and the default max_result_window

# Text.
ANALYZER = "english_folded"
SEARCH_FIELD = "search_text"
# How often title, heading and text repeat in SEARCH_FIELD: the embedded index's column weights.
TEXT_REPEATS = tuple(max(1, round(w)) for w in BM25_WEIGHTS)

# Metadata copied onto chunks, by type.
META_TEXT = "meta_text"
META_NUMBER = "meta_number"
META_KEYS = "meta_keys"
_QUERY_TOKEN = re.compile(r"[^\W_]+")

# Writes.
BULK_BATCH = 500  # chunks per _bulk request
BULK_MAX_BYTES = 8 * 1024 * 1024  # Amazon OpenSearch Service takes 10 MiB on small instances
OCC_ATTEMPTS = 30  # conditional writes retried under contention before giving up
DEFAULT_RETIRE_GRACE_S = 60.0
ORPHAN_AGE_S = 3600  # unreferenced chunks older than this belong to a crashed swap
SEARCH_ATTEMPTS = 3
LIST_PAGE = 1000
ACTIVE = "active_generation"  # internal field of a document record
_AWS_HOSTS = (".es.amazonaws.com", ".es.amazonaws.com.cn")
MATCH_NONE: dict[str, Any] = {"match_none": {}}

Body = dict[str, Any]
_P = ParamSpec("_P")
_R = TypeVar("_R")


class SearchIndexUnavailable(RetryableError):
    """OpenSearch did not answer, was overloaded, or a write kept losing a concurrency race."""


class IndexRequestRejected(PermanentError):
    """OpenSearch refused to index a chunk (a mapping or validation error): retrying cannot help."""


# -- request bodies (module level, so tests can compare them with OpenSearch's documentation) -----


def chunk_index_body(dimension: int, *, replicas: int = 1) -> Body:
    """Settings and mappings of a tenant's chunk index."""
    return {
        "settings": {
            "index": {"knn": True, "number_of_shards": 1, "number_of_replicas": replicas},
            "analysis": {
                "filter": {
                    "english_possessive_stemmer": {
                        "type": "stemmer",
                        "language": "possessive_english",
                    }
                },
                "analyzer": {
                    ANALYZER: {
                        "type": "custom",
                        "tokenizer": "standard",
                        "filter": [
                            "english_possessive_stemmer",
                            "lowercase",
                            "asciifolding",
                            "porter_stem",
                        ],
                    }
                },
            },
        },
        "mappings": {
            "dynamic": False,
            "dynamic_templates": [
                {
                    "metadata_text": {
                        "path_match": f"{META_TEXT}.*",
                        # 8191 characters stay under Lucene's 32 766-byte term limit.
                        "mapping": {"type": "keyword", "ignore_above": 8191},
                    }
                },
                {
                    "metadata_number": {
                        "path_match": f"{META_NUMBER}.*",
                        "mapping": {"type": "double"},
                    }
                },
            ],
            "properties": {
                "chunk_id": {"type": "keyword"},
                "doc_id": {"type": "keyword"},
                "generation": {"type": "keyword"},
                "version": {"type": "keyword"},
                "ordinal": {"type": "integer"},
                "title": {"type": "text", "analyzer": ANALYZER},
                "heading": {"type": "text", "analyzer": ANALYZER},
                "text": {"type": "text", "index": False},  # searched through SEARCH_FIELD
                SEARCH_FIELD: {"type": "text", "analyzer": ANALYZER},
                "pages": {"type": "integer"},
                "ocr_pages": {"type": "integer", "index": False},
                "token_count": {"type": "integer", "index": False},
                "source_id": {"type": "keyword"},
                "source_uri": {"type": "keyword", "index": False},
                "media_type": {"type": "keyword"},
                META_TEXT: {"type": "object", "dynamic": True},
                META_NUMBER: {"type": "object", "dynamic": True},
                META_KEYS: {"type": "keyword"},
                "indexed_at": {"type": "date"},
                VECTOR_FIELD: {
                    "type": "knn_vector",
                    "dimension": dimension,
                    "method": {
                        "name": "hnsw",
                        "engine": ENGINE,
                        "space_type": SPACE_TYPE,
                        "parameters": {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
                    },
                },
            },
        },
    }


def documents_index_body(*, replicas: int = 1) -> Body:
    """The shared record index: only what is filtered or sorted on is indexed."""
    keyword = {"type": "keyword"}
    return {
        "settings": {"index": {"number_of_shards": 1, "number_of_replicas": replicas}},
        "mappings": {
            "dynamic": False,
            "properties": {
                "tenant": keyword,
                "doc_id": keyword,
                "source_id": keyword,
                "source_uri": keyword,
                "status": keyword,
                "version": keyword,
                "media_type": keyword,
                "updated_at": {"type": "date"},
                "metadata": {"type": "object", "enabled": False},
                ACTIVE: keyword,
            },
        },
    }


def manifests_index_body(*, replicas: int = 1) -> Body:
    return {
        "settings": {"index": {"number_of_shards": 1, "number_of_replicas": replicas}},
        "mappings": {"dynamic": False, "properties": {}},
    }


def hybrid_pipeline_body(weights: tuple[float, float] = (0.3, 0.7)) -> Body:
    """A search pipeline that min-max normalises and averages a ``hybrid`` query's scores.

    ``weights`` follow the order of the hybrid query's ``queries``: (BM25, knn). Shape from
    https://docs.opensearch.org/latest/search-plugins/search-pipelines/normalization-processor/
    """
    if len(weights) != 2 or any(not 0.0 <= w <= 1.0 for w in weights):
        raise ValueError("weights must be two numbers between 0 and 1: (keyword, vector)")
    if not math.isclose(sum(weights), 1.0, abs_tol=1e-9):
        raise ValueError(f"weights must sum to 1, not {sum(weights)}")
    return {
        "description": "DatatoRAG hybrid search: min-max normalised BM25 and k-NN scores",
        "phase_results_processors": [
            {
                "normalization-processor": {
                    "normalization": {"technique": "min_max"},
                    "combination": {
                        "technique": "arithmetic_mean",
                        "parameters": {"weights": list(weights)},
                    },
                }
            }
        ],
    }


def keyword_words(query: str) -> list[str]:
    """The words a keyword query searches: the embedded index's tokens and stop words."""
    terms = list(dict.fromkeys(t.lower() for t in _QUERY_TOKEN.findall(query)))
    content = [t for t in terms if t not in STOP_WORDS] or terms
    return content[:MAX_QUERY_TERMS]


def keyword_query(words: Sequence[str], top_k: int, filters: list[Body]) -> Body:
    return {
        "size": top_k,
        "track_total_hits": False,
        "_source": {"excludes": [VECTOR_FIELD]},
        "query": {
            "bool": {
                "must": [{"match": {SEARCH_FIELD: {"query": " ".join(words), "operator": "or"}}}],
                "filter": filters,
            }
        },
    }


def vector_query(vector: Sequence[float], top_k: int, filters: list[Body]) -> Body:
    """A knn query whose filter runs inside the graph search (efficient filtering)."""
    return {
        "size": top_k,
        "track_total_hits": False,
        "_source": {"excludes": [VECTOR_FIELD]},
        "query": {
            "knn": {
                VECTOR_FIELD: {
                    "vector": list(vector),
                    "k": min(max(top_k, EF_SEARCH), MAX_K),
                    "filter": {"bool": {"filter": filters}},
                }
            }
        },
    }


def filter_clauses(filters: Filters | None) -> list[Body]:
    """OpenSearch bool ``filter`` clauses with the embedded index's filter semantics.

    Raises ``ValueError`` for an invalid filter, as ``parse_filters`` does.
    """
    return [_clause(condition) for condition in parse_filters(filters).conditions]


def _clause(condition: Condition) -> Body:
    if condition.key is None:  # doc_id, source_id, media_type: keywords holding strings
        field = condition.field
        if condition.kind == "eq":
            return {"term": {field: condition.value}}
        if condition.kind == "in":
            return {"terms": {field: list(condition.value)}} if condition.value else MATCH_NONE
        if all(isinstance(bound, str) for _, bound in condition.value):
            return {"range": {field: dict(condition.value)}}
        return MATCH_NONE  # a number never compares with a string field
    return _metadata_clause(condition.key, condition)


def _metadata_clause(key: str, condition: Condition) -> Body:
    text, number = f"{META_TEXT}.{key}", f"{META_NUMBER}.{key}"
    if condition.kind == "eq":
        if condition.value is None:  # missing or null
            return {"bool": {"must_not": [{"term": {META_KEYS: key}}]}}
        if isinstance(condition.value, str):
            return {"term": {text: condition.value}}
        return {"term": {number: float(condition.value)}}
    if condition.kind == "in":
        strings = [v for v in condition.value if isinstance(v, str)]
        numbers = [float(v) for v in condition.value if not isinstance(v, str)]
        should = [{"terms": {f: vs}} for f, vs in ((text, strings), (number, numbers)) if vs]
        if not should:
            return MATCH_NONE
        return (
            should[0]
            if len(should) == 1
            else {"bool": {"should": should, "minimum_should_match": 1}}
        )
    bounds = condition.value
    if all(isinstance(bound, str) for _, bound in bounds):
        return {"range": {text: dict(bounds)}}
    if not any(isinstance(bound, str) for _, bound in bounds):
        return {"range": {number: {op: float(bound) for op, bound in bounds}}}
    return MATCH_NONE  # one value cannot be both a string and a number


def metadata_fields(metadata: Mapping[str, Any]) -> Body:
    """A document's metadata as its chunks carry it for filtering (typed, no conflicts)."""
    texts: dict[str, str] = {}
    numbers: dict[str, float] = {}
    keys: list[str] = []
    for key, value in metadata.items():
        if value is None or not METADATA_KEY.match(key):
            continue  # null equals missing; other keys cannot be named by a filter
        keys.append(key)
        if isinstance(value, str):
            texts[key] = value
        elif isinstance(value, bool | int | float) and math.isfinite(value):
            numbers[key] = float(value)
    return {META_TEXT: texts, META_NUMBER: numbers, META_KEYS: keys}


# -- the adapter ---------------------------------------------------------------------------------


def opensearch_client(settings: Settings, *, timeout: float = 30.0) -> OpenSearch:
    """A client for ``settings.opensearch_url``.

    Credentials in the URL are used as HTTP basic auth; an Amazon OpenSearch Service domain
    without them is signed with SigV4 from the default AWS credential chain.
    """
    url = settings.opensearch_url
    if not url:
        raise DatatoRAGError(
            "DATATORAG_OPENSEARCH_URL is not set: the opensearch index backend needs it"
        )
    parts = urlsplit(url)
    options: dict[str, Any] = {"hosts": [url], "timeout": timeout, "max_retries": 2}
    if parts.username is None and (parts.hostname or "").endswith(_AWS_HOSTS):
        import boto3
        from opensearchpy import Urllib3AWSV4SignerAuth

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise DatatoRAGError("no AWS credentials found to sign OpenSearch requests")
        options["http_auth"] = Urllib3AWSV4SignerAuth(credentials, settings.aws_region, "es")
    return OpenSearch(**options)


def _translated(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turns OpenSearch's transient failures into ``SearchIndexUnavailable`` (retryable)."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except OpenSearchConnectionError as err:
            raise SearchIndexUnavailable(f"OpenSearch did not answer: {err}") from err
        except TransportError as err:
            if isinstance(err.status_code, int) and (
                err.status_code >= 500 or err.status_code == 429
            ):
                raise SearchIndexUnavailable(
                    f"OpenSearch answered {err.status_code}: {err.error}"
                ) from err
            raise

    return wrapper


@dataclass(frozen=True)
class _Stored:
    """A document as read, with what a conditional write needs."""

    source: Body
    seq_no: int
    primary_term: int


class OpenSearchIndex:
    """``SearchIndex`` on an OpenSearch cluster; see the module docstring for the design."""

    def __init__(
        self,
        client: OpenSearch,
        *,
        prefix: str = DEFAULT_PREFIX,
        dimension: int | None = None,
        replicas: int = 1,
        retire_grace_s: float = DEFAULT_RETIRE_GRACE_S,
    ) -> None:
        """``dimension`` fixes the vector size of new tenant indices (else the first chunks')."""
        self.client = client
        self.prefix = prefix
        self.dimension = dimension
        self.replicas = replicas
        self.retire_grace_s = retire_grace_s
        self.documents_index = f"{prefix}documents"
        self.manifests_index = f"{prefix}manifests"
        self._lock = threading.Lock()
        self._ready: set[str] = set()  # indices known to exist
        self._dimensions: dict[str, int] = {}  # chunk index -> vector dimension

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenSearchIndex:
        return cls(
            opensearch_client(settings),
            prefix=settings.opensearch_index_prefix,
            replicas=settings.opensearch_replicas,
        )

    def chunk_index(self, tenant: str) -> str:
        return f"{self.prefix}chunks-{validate_tenant(tenant)}"

    def close(self) -> None:
        self.client.close()

    # -- documents ---------------------------------------------------------------------------

    @_translated
    def upsert_document(self, doc: DocumentRecord) -> None:
        validate_tenant(doc.tenant)
        self._ensure_index(self.documents_index, documents_index_body(replicas=self.replicas))
        fresh = doc.model_dump(mode="json")

        def replace(current: _Stored | None) -> Body:
            # The visible generation is the index's business, not the caller's: keep it.
            return {**fresh, ACTIVE: current.source.get(ACTIVE) if current else None}

        self._occ(self.documents_index, _record_id(doc.tenant, doc.doc_id), replace)

    @_translated
    def get_document(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        validate_tenant(tenant)
        stored = self._get(self.documents_index, _record_id(tenant, doc_id))
        return _record(stored.source) if stored else None

    @_translated
    def list_documents(
        self,
        tenant: str,
        *,
        source_id: str | None = None,
        status: DocumentStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[DocumentRecord]:
        validate_tenant(tenant)
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        clauses: list[Body] = [{"term": {"tenant": tenant}}]
        if source_id is not None:
            clauses.append({"term": {"source_id": source_id}})
        if status is not None:
            clauses.append({"term": {"status": DocumentStatus(status).value}})
        if limit == 0:
            return []
        try:
            # Records are written without a refresh; a listing must still show every one.
            self.client.indices.refresh(index=self.documents_index)
            sources = self._sorted_records({"bool": {"filter": clauses}}, limit, offset)
        except NotFoundError:
            return []
        return [_record(source) for source in sources]

    def _sorted_records(self, query: Body, limit: int, offset: int) -> list[Body]:
        sort = [{"source_uri": "asc"}, {"doc_id": "asc"}]
        if offset + limit <= MAX_K:
            body = {"query": query, "sort": sort, "track_total_hits": False}
            hits = self._search_hits(self.documents_index, {**body, "from": offset, "size": limit})
        else:  # past the result window: walk with search_after
            hits = list(itertools.islice(self._walk(query, sort), offset, offset + limit))
        return [h["_source"] for h in hits]

    def _walk(
        self, query: Body, sort: list[Body], source: list[str] | None = None
    ) -> Iterator[Body]:
        """Every record matching ``query``, in ``sort`` order (which must end on a unique key)."""
        after: list[Any] | None = None
        while True:
            body: Body = {
                "query": query,
                "sort": sort,
                "size": LIST_PAGE,
                "track_total_hits": False,
            }
            if source is not None:
                body["_source"] = source
            if after is not None:
                body["search_after"] = after
            hits = self._search_hits(self.documents_index, body)
            yield from hits
            if len(hits) < LIST_PAGE:
                return
            after = hits[-1]["sort"]

    @_translated
    def set_status(
        self,
        tenant: str,
        doc_id: str,
        status: DocumentStatus,
        *,
        version: str | None = None,
        reason: str | None = None,
    ) -> bool:
        validate_tenant(tenant)
        status = DocumentStatus(status)

        def update(current: _Stored | None) -> Body | None:
            if current is None:
                return None
            record = current.source
            if version is not None and (
                record["version"] != version
                or (record["status"] == DocumentStatus.DELETED and status != DocumentStatus.DELETED)
            ):
                return None  # a newer version was announced, or the document is gone
            if status == DocumentStatus.DELETED:
                return _deleted(record, reason)
            return {**record, "status": status.value, "reason": reason, "updated_at": _now()}

        written = self._occ(self.documents_index, _record_id(tenant, doc_id), update)
        if written is not None and status == DocumentStatus.DELETED:
            self._settle(tenant, doc_id)
        return written is not None

    @_translated
    def delete_document(self, tenant: str, doc_id: str) -> None:
        validate_tenant(tenant)
        exists = False

        def delete(current: _Stored | None) -> Body | None:
            nonlocal exists
            exists = current is not None
            if current is None or current.source["status"] == DocumentStatus.DELETED:
                return None
            return _deleted(current.source, None)

        self._occ(self.documents_index, _record_id(tenant, doc_id), delete)
        if exists:  # also when already deleted: finishes a delete that crashed half way
            self._settle(tenant, doc_id)

    # -- chunks ------------------------------------------------------------------------------

    @_translated
    def replace_chunks(
        self, tenant: str, doc_id: str, version: str, chunks: Sequence[IndexedChunk], **meta: Any
    ) -> bool:
        """Swap in ``version``'s chunks. ``meta`` may carry ``page_count`` and ``title``."""
        validate_tenant(tenant)
        unknown = set(meta) - REPLACE_META
        if unknown:
            raise TypeError(f"replace_chunks got unknown metadata {sorted(unknown)}")
        vectors = chunk_vectors(doc_id, chunks)
        record_id = _record_id(tenant, doc_id)
        current = self._get(self.documents_index, record_id)
        if current is None or not _is_current(current.source, version):
            return False
        if len(chunks):
            self._ensure_chunk_index(tenant, vectors.shape[1])
        title = meta.get("title") or current.source["title"]
        # What the document says about itself; the record's own (source) metadata wins.
        metadata = {**meta.get("metadata", {}), **(current.source.get("metadata") or {})}
        generation = uuid.uuid4().hex
        self._bulk_index(
            tenant, generation, {**current.source, "metadata": metadata}, title, chunks, vectors
        )

        def commit(stored: _Stored | None) -> Body | None:
            if stored is None or not _is_current(stored.source, version):
                return None
            record = stored.source
            page_count = meta.get("page_count")
            return {
                **record,
                "status": DocumentStatus.INDEXED.value,
                "reason": None,
                "chunk_count": len(chunks),
                "title": title,
                "metadata": {**meta.get("metadata", {}), **(record.get("metadata") or {})},
                "page_count": record.get("page_count") if page_count is None else page_count,
                "updated_at": _now(),
                ACTIVE: generation,
            }

        if self._occ(self.documents_index, record_id, commit) is None:
            self._drop_unreferenced(tenant, generation)
            return False
        self._settle(tenant, doc_id)
        return True

    def _bulk_index(
        self,
        tenant: str,
        generation: str,
        record: Body,
        title: str,
        chunks: Sequence[IndexedChunk],
        vectors: npt.NDArray[np.float32],
    ) -> None:
        """Index the chunks in batches; the last batch waits until all of them are searchable."""
        index = self.chunk_index(tenant)
        shared = {
            "generation": generation,
            "version": record["version"],
            "title": title,
            "source_id": record["source_id"],
            "source_uri": record["source_uri"],
            "media_type": record["media_type"],
            "indexed_at": _now(),
            **metadata_fields(record.get("metadata") or {}),
        }
        lines = (
            _bulk_lines(index, generation, chunk, vector, shared)
            for chunk, vector in zip(chunks, vectors, strict=True)
        )
        batches = list(_bulk_batches(lines))
        for number, batch in enumerate(batches, start=1):
            last = number == len(batches)
            response = self.client.bulk(body=batch, refresh="wait_for" if last else "false")
            if response.get("errors"):
                self._drop_unreferenced(tenant, generation)
                raise _bulk_failure(response)

    # -- the manifest ------------------------------------------------------------------------

    def _settle(self, tenant: str, doc_id: str) -> None:
        """Make the manifest show the record's generation, then drop what is long retired."""
        manifest = self._sync_manifest(tenant, doc_id)
        if manifest is not None:
            self._purge_retired(tenant, manifest)

    def _sync_manifest(self, tenant: str, doc_id: str) -> Body | None:
        """Copy the record's active generation into the tenant's manifest (the commit point).

        The record is read after the manifest, and the manifest written only if unchanged
        since, so the last writer always writes the record's latest generation.
        """
        self._ensure_index(self.manifests_index, manifests_index_body(replicas=self.replicas))
        latest: Body | None = None

        def sync(current: _Stored | None) -> Body | None:
            nonlocal latest
            empty: Body = {"tenant": tenant, "active": {}, "retired": []}
            manifest = current.source if current else empty
            latest = manifest
            record = self._get(self.documents_index, _record_id(tenant, doc_id))
            want = record.source.get(ACTIVE) if record else None
            have = manifest["active"].get(doc_id)
            if want == have:
                return None
            active = {k: v for k, v in manifest["active"].items() if k != doc_id}
            if want is not None:
                active[doc_id] = want
            retired = list(manifest.get("retired", []))
            if have is not None:
                retired.append({"doc_id": doc_id, "generation": have, "at": time.time()})
            latest = {**manifest, "active": active, "retired": retired}
            return latest

        self._occ(self.manifests_index, tenant, sync)
        return latest

    def _active_generations(self, tenant: str) -> list[str]:
        response = self.client.get(
            index=self.manifests_index, id=tenant, _source_includes="active", ignore=404
        )
        active = (response.get("_source") or {}).get("active") or {}
        return sorted(set(active.values()))

    @_translated
    def purge(self, tenant: str, *, orphans: bool = True) -> int:
        """Delete chunks no search can see any more; returns how many were deleted.

        Retired generations go once their grace has passed. With ``orphans``, swaps and deletes
        that stopped between the record and the manifest write are finished first, then chunks
        that neither the manifest nor a record names and that are older than an hour (swaps
        that crashed before their commit) are deleted too. Writes purge retired generations as
        they go; run this for tenants that stopped writing, and after crashes.
        """
        validate_tenant(tenant)
        if orphans:
            self._repair(tenant)
        manifest = self._get(self.manifests_index, tenant)
        deleted = self._purge_retired(tenant, manifest.source) if manifest else 0
        if orphans:
            manifest = self._get(self.manifests_index, tenant)
            known: set[str] = set()
            if manifest is not None:
                known |= set(manifest.source["active"].values())
                known |= {r["generation"] for r in manifest.source.get("retired", [])}
            query: Body = {
                "bool": {"filter": [{"range": {"indexed_at": {"lt": f"now-{ORPHAN_AGE_S}s"}}}]}
            }
            if known:
                query["bool"]["must_not"] = [{"terms": {"generation": sorted(known)}}]
            deleted += self._delete_by_query(tenant, query)
        return deleted

    def _repair(self, tenant: str) -> None:
        """Bring the manifest in line with the records (after a crash between the two writes)."""
        try:
            self.client.indices.refresh(index=self.documents_index)
        except NotFoundError:
            return
        records = {
            hit["_source"]["doc_id"]: hit["_source"].get(ACTIVE)
            for hit in self._walk(
                {"bool": {"filter": [{"term": {"tenant": tenant}}]}},
                [{"doc_id": "asc"}],
                source=["doc_id", ACTIVE],
            )
        }
        manifest = self._get(self.manifests_index, tenant)
        active = manifest.source["active"] if manifest else {}
        for doc_id in sorted(set(records) | set(active)):
            if records.get(doc_id) != active.get(doc_id):
                self._sync_manifest(tenant, doc_id)

    def _purge_retired(self, tenant: str, manifest: Body) -> int:
        cutoff = time.time() - self.retire_grace_s
        due = sorted({r["generation"] for r in manifest.get("retired", []) if r["at"] <= cutoff})
        if not due:
            return 0
        deleted = self._delete_generations(tenant, due)

        def forget(current: _Stored | None) -> Body | None:
            if current is None:
                return None
            retired = current.source.get("retired", [])
            kept = [r for r in retired if r["generation"] not in due]
            return None if len(kept) == len(retired) else {**current.source, "retired": kept}

        self._occ(self.manifests_index, tenant, forget)
        return deleted

    def _drop_unreferenced(self, tenant: str, generation: str) -> None:
        """Best effort: nothing names these chunks, and ``purge`` sweeps what this leaves."""
        try:
            self._delete_generations(tenant, [generation])
        except TransportError as err:
            log.warning("could not drop generation %s of tenant %s: %s", generation, tenant, err)

    def _delete_generations(self, tenant: str, generations: list[str]) -> int:
        return self._delete_by_query(tenant, {"terms": {"generation": generations}})

    def _delete_by_query(self, tenant: str, query: Body) -> int:
        try:
            response = self.client.delete_by_query(
                index=self.chunk_index(tenant),
                body={"query": query},
                conflicts="proceed",
                request_timeout=120,
            )
        except NotFoundError:
            return 0
        return int(response.get("deleted", 0))

    # -- search ------------------------------------------------------------------------------

    @_translated
    def keyword_search(
        self, tenant: str, query: str, top_k: int, filters: Filters | None = None
    ) -> list[SearchHit]:
        validate_tenant(tenant)
        clauses = filter_clauses(filters)
        words = keyword_words(query)
        top_k = _check_top_k(top_k)
        if not words or top_k == 0:
            return []

        def body(active: list[str]) -> Body:
            return keyword_query(words, top_k, [{"terms": {"generation": active}}, *clauses])

        hits = self._search_visible(tenant, body)
        return [_hit(h, float(h["_score"])) for h in hits]

    @_translated
    def vector_search(
        self, tenant: str, vector: Sequence[float], top_k: int, filters: Filters | None = None
    ) -> list[SearchHit]:
        validate_tenant(tenant)
        clauses = filter_clauses(filters)
        query = unit_vector(np.asarray(vector, dtype=np.float32), "query vector")
        top_k = _check_top_k(top_k)
        if top_k == 0:
            return []
        dimension = self._index_dimension(tenant)
        if dimension is None:
            return []
        if query.shape[0] != dimension:
            raise ValueError(
                f"query vector has {query.shape[0]} dimensions; the index holds {dimension}"
            )
        values: list[float] = query.tolist()

        def body(active: list[str]) -> Body:
            return vector_query(values, top_k, [{"terms": {"generation": active}}, *clauses])

        hits = self._search_visible(tenant, body)
        return [_hit(h, _cosine(float(h["_score"]))) for h in hits]

    def _search_visible(self, tenant: str, body: Callable[[list[str]], Body]) -> list[Body]:
        """Hits among the generations the manifest names, read once per attempt.

        An attempt slower than half the retirement grace is repeated: its generations might
        have been purged under it.
        """
        for _ in range(SEARCH_ATTEMPTS):
            started = time.monotonic()
            active = self._active_generations(tenant)
            if not active:
                return []
            try:
                hits = self._search_hits(self.chunk_index(tenant), body(active))
            except NotFoundError:
                return []  # only empty documents were ever indexed
            if time.monotonic() - started <= self.retire_grace_s / 2:
                return hits
        raise SearchIndexUnavailable(
            f"searches of tenant {tenant!r} took longer than {self.retire_grace_s / 2:g} s "
            f"{SEARCH_ATTEMPTS} times in a row"
        )

    def _search_hits(self, index: str, body: Body) -> list[Body]:
        response = self.client.search(index=index, body=body)
        hits: list[Body] = response["hits"]["hits"]
        return hits

    # -- hybrid (server side) ----------------------------------------------------------------

    @_translated
    def ensure_hybrid_pipeline(
        self, name: str | None = None, weights: tuple[float, float] = (0.3, 0.7)
    ) -> str:
        """Create (or update) the normalization search pipeline; returns its name.

        The server-side alternative to the query service's RRF: send
        ``{"query": {"hybrid": {"queries": [<keyword_query's bool>, <vector_query's knn>]}}}``
        to ``<chunk index>/_search?search_pipeline=<name>``; ``weights`` follow that order.
        """
        name = name or f"{self.prefix}hybrid"
        self.client.search_pipeline.put(id=name, body=hybrid_pipeline_body(weights))
        return name

    # -- plumbing ----------------------------------------------------------------------------

    def _get(self, index: str, doc_id: str) -> _Stored | None:
        # A miss is an answer, not a failure: ignore=404 keeps the transport from logging it.
        response = self.client.get(index=index, id=doc_id, ignore=404)
        if not response.get("found"):
            return None
        return _Stored(response["_source"], response["_seq_no"], response["_primary_term"])

    def _put(self, index: str, doc_id: str, source: Body, expected: _Stored | None) -> bool:
        """Write ``source`` only if the document is still as read; False when it changed."""
        if expected is None:
            condition: dict[str, Any] = {"op_type": "create"}
        else:
            condition = {"if_seq_no": expected.seq_no, "if_primary_term": expected.primary_term}
        try:
            self.client.index(index=index, id=doc_id, body=source, **condition)
        except ConflictError:
            return False
        return True

    def _occ(
        self, index: str, doc_id: str, change: Callable[[_Stored | None], Body | None]
    ) -> Body | None:
        """Read, change, write conditionally; again from the read when someone wrote meanwhile.

        ``change`` returns the new source, or None to write nothing (then this returns None).
        """
        for attempt in range(OCC_ATTEMPTS):
            current = self._get(index, doc_id)
            new = change(current)
            if new is None:
                return None
            if self._put(index, doc_id, new, current):
                return new
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
        raise SearchIndexUnavailable(
            f"{index}/{doc_id} kept changing: gave up after {OCC_ATTEMPTS} conditional writes"
        )

    def _ensure_index(self, name: str, body: Body) -> None:
        if name in self._ready:
            return
        try:
            self.client.indices.create(index=name, body=body)
        except RequestError as err:
            if err.error != "resource_already_exists_exception":
                raise
        with self._lock:
            self._ready.add(name)

    def _ensure_chunk_index(self, tenant: str, dimension: int) -> None:
        """Create the tenant's chunk index if needed; refuse vectors of another dimension."""
        expected = self.dimension or dimension
        if dimension != expected:
            raise ValueError(
                f"chunk vectors have {dimension} dimensions; the index holds {expected}"
            )
        name = self.chunk_index(tenant)
        if name not in self._dimensions:
            self._ensure_index(name, chunk_index_body(expected, replicas=self.replicas))
        known = self._index_dimension(tenant)
        if known is not None and known != dimension:
            raise ValueError(f"chunk vectors have {dimension} dimensions; the index holds {known}")

    def _index_dimension(self, tenant: str) -> int | None:
        """The vector dimension of the tenant's chunk index; None while it does not exist."""
        name = self.chunk_index(tenant)
        if name not in self._dimensions:
            mapping = self.client.indices.get_mapping(index=name, ignore=404)
            if name not in mapping:
                return None
            properties = mapping[name]["mappings"]["properties"]
            with self._lock:
                self._dimensions[name] = int(properties[VECTOR_FIELD]["dimension"])
        return self._dimensions[name]


# -- helpers -------------------------------------------------------------------------------------


def _record_id(tenant: str, doc_id: str) -> str:
    return f"{tenant}:{doc_id}"


def _record(source: Body) -> DocumentRecord:
    return DocumentRecord.model_validate(
        {k: v for k, v in source.items() if k in DocumentRecord.model_fields}
    )


def _is_current(record: Body, version: str) -> bool:
    return bool(record["version"] == version and record["status"] != DocumentStatus.DELETED)


def _deleted(record: Body, reason: str | None) -> Body:
    """The record of a deleted document: no visible generation, no chunks."""
    return {
        **record,
        "status": DocumentStatus.DELETED.value,
        "reason": reason,
        "chunk_count": 0,
        "updated_at": _now(),
        ACTIVE: None,
    }


def _now() -> str:
    return utcnow().isoformat()


def _check_top_k(top_k: int) -> int:
    if top_k < 0:
        raise ValueError("top_k must not be negative")
    return min(top_k, MAX_K)


def _bulk_lines(
    index: str, generation: str, chunk: IndexedChunk, vector: npt.NDArray[np.float32], shared: Body
) -> str:
    """One ``index`` action and its document, as two NDJSON lines."""
    action = {"index": {"_index": index, "_id": f"{generation}:{chunk.chunk_id}"}}
    source = {
        **shared,
        "chunk_id": chunk.chunk_id,
        "doc_id": chunk.doc_id,
        "ordinal": chunk.ordinal,
        "heading": chunk.heading,
        "text": chunk.text,
        SEARCH_FIELD: search_text(shared["title"], chunk.heading, chunk.text),
        "pages": chunk.pages,
        "ocr_pages": chunk.ocr_pages,
        "token_count": chunk.token_count,
        VECTOR_FIELD: vector.tolist(),
    }
    return f"{json.dumps(action)}\n{json.dumps(source, ensure_ascii=False)}\n"


def _bulk_batches(lines: Iterator[str]) -> Iterator[str]:
    """NDJSON bodies of at most ``BULK_BATCH`` actions and about ``BULK_MAX_BYTES`` each."""
    batch: list[str] = []
    size = 0
    for line in lines:
        cost = len(line.encode())
        if batch and (len(batch) == BULK_BATCH or size + cost > BULK_MAX_BYTES):
            yield "".join(batch)
            batch, size = [], 0
        batch.append(line)
        size += cost
    if batch:
        yield "".join(batch)


def _bulk_failure(response: Body) -> DatatoRAGError:
    failed = [
        item.get("index", {})
        for item in response.get("items", [])
        if item.get("index", {}).get("error")
    ]
    statuses = {int(f.get("status", 0)) for f in failed}
    first = failed[0]["error"] if failed else {}
    detail = (
        f"{len(failed)} chunk(s) not indexed; first: {first.get('type')}: {first.get('reason')}"
    )
    if any(s == 429 or s >= 500 for s in statuses):
        return SearchIndexUnavailable(detail)
    return IndexRequestRejected(detail)


def search_text(title: str, heading: str, text: str) -> str:
    """The BM25 field's value: each part repeated by its weight (title twice)."""
    parts = zip((title, heading, text), TEXT_REPEATS, strict=True)
    return "\n".join(part for part, times in parts for _ in range(times) if part)


def _cosine(score: float) -> float:
    """Undo lucene's cosinesimil scoring, (1 + cos) / 2."""
    return max(-1.0, min(1.0, 2.0 * score - 1.0))


def _hit(hit: Body, score: float) -> SearchHit:
    source = hit["_source"]
    return SearchHit(
        chunk_id=source["chunk_id"],
        doc_id=source["doc_id"],
        title=source["title"],
        source_uri=source["source_uri"],
        pages=source["pages"],
        ocr_pages=source.get("ocr_pages", []),  # absent from chunks indexed before OCR
        heading=source["heading"],
        text=source["text"],
        score=score,
    )
