"""The indices' settings and mappings, and what a chunk and a record hold in them.

Vectors: a ``knn_vector`` field, HNSW on the ``lucene`` engine, ``cosinesimil`` space, m=16,
ef_construction=128 (https://docs.opensearch.org/latest/mappings/supported-field-types/knn-methods-engines/).
Lucene over faiss because a tenant's share of an index is small (thousands to a few hundred
thousand vectors, in a pool or its own index), where lucene's efficient filtering (2.4+) switches
to an exact search over the filtered set (the tenant's visible chunks), needs no native memory
and no circuit breaker tuning; nmslib is deprecated. faiss (with
``innerproduct`` on the unit vectors) is the choice past millions of vectors per tenant. Lucene
ignores ``ef_search`` and searches with ef = k, so a query asks for k = max(top_k, 100) and
returns ``size`` = top_k: recall of a 100-candidate beam at any top_k. Its score for
``cosinesimil`` is (2 - (1 - cos)) / 2 (https://docs.opensearch.org/latest/mappings/supported-field-types/knn-spaces/);
hits report the cosine itself, as the port promises. A tenant re-embedded into another
embedding space has its vectors in that space's own field (``space_field``, added to the live
index by ``put_mapping``: ``indices.py``, ``spaces.py``); hits leave every vector field out.

Text: BM25 runs on ``search_text``, the chunk's title twice, its heading and its text in one
field: the embedded index's BM25 with column weights (2, 1, 1) counts weighted term
frequencies against one document length, and so does one combined field (per-field BM25 summed
by a ``multi_match`` would rank a short chunk with fewer matches above a longer one with more).
``title`` and ``heading`` are also text fields of their own; ``text`` is stored, not indexed
twice. The analyzer, ``english_folded``, is the standard tokenizer, English possessive
stemming, lowercase, ASCII folding and the Porter stemmer, like the embedded index's
words. It has no stop filter: queries drop the stop words of ``datatorag.domain.keywords``
(``queries.py``; a query made only of stop words still matches).

Metadata: a document's value is copied onto its chunks by type: strings to
``meta_text.<key>`` (keyword), numbers and booleans to ``meta_number.<key>`` (double; true is
1, as in Python and SQLite), and every non-null key to ``meta_keys``. Arrays and objects are
kept nowhere, so they match no filter, as in the embedded index; typed fields also mean a key
that holds a string in one document and a number in another never makes a mapping conflict.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

from datatorag.domain.keywords import BM25_WEIGHTS
from datatorag.domain.models import METADATA_KEY
from datatorag.domain.tenants import validate_tenant

Body = dict[str, Any]

# Vectors (see the module docstring).
VECTOR_FIELD = "embedding"  # a tenant's vectors until its first re-embed (``spaces.py``)
VECTOR_FIELDS = f"{VECTOR_FIELD}*"  # every vector field: left out of the hits' _source
ENGINE = "lucene"
SPACE_TYPE = "cosinesimil"
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128

# Text.
ANALYZER = "english_folded"
SEARCH_FIELD = "search_text"
# How often title, heading and text repeat in SEARCH_FIELD: the embedded index's column weights.
TEXT_REPEATS = tuple(max(1, round(w)) for w in BM25_WEIGHTS)

# Metadata copied onto chunks, by type.
META_TEXT = "meta_text"
META_NUMBER = "meta_number"
META_KEYS = "meta_keys"

ACTIVE = "active_generation"  # internal field of a document record: its visible generation
TENANT_FIELD = "tenant"  # every chunk names its tenant (``scope.py`` filters on it)


# -- request bodies (module level, so tests can compare them with OpenSearch's documentation) -----


def chunk_index_body(dimension: int, *, replicas: int = 1) -> Body:
    """Settings and mappings of a chunk index, a tenant's own (silo) or shared (pool).

    Custom routing is required (``_routing``): OpenSearch refuses to index or get a chunk
    without a routing value (https://docs.opensearch.org/latest/mappings/metadata-fields/routing/).
    """
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
            "_routing": {"required": True},
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
                TENANT_FIELD: {"type": "keyword"},
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
                VECTOR_FIELD: vector_field_body(dimension),
            },
        },
    }


def vector_field_body(dimension: int) -> Body:
    """A ``knn_vector`` field's mapping (also what ``put_mapping`` adds for a re-embed)."""
    return {
        "type": "knn_vector",
        "dimension": dimension,
        "method": {
            "name": "hnsw",
            "engine": ENGINE,
            "space_type": SPACE_TYPE,
            "parameters": {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
        },
    }


def space_field(space: str) -> str:
    """The vector field of an embedding space (``domain.spaces``) a tenant was re-embedded into:
    one per space, so a tenant's old and new vectors never share a field and two spaces of
    different dimensions can live in one pool."""
    return f"{VECTOR_FIELD}_{hashlib.sha256(space.encode()).hexdigest()[:16]}"


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


def metadata_fields(metadata: Mapping[str, Any]) -> Body:
    """A document's metadata as its chunks carry it for filtering (typed, no conflicts)."""
    texts: dict[str, str | list[str]] = {}
    numbers: dict[str, float] = {}
    keys: list[str] = []
    for key, value in metadata.items():
        if value is None or not METADATA_KEY.match(key):
            continue  # null equals missing; other keys cannot be named by a filter
        keys.append(key)
        if isinstance(value, str):
            texts[key] = value
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            texts[key] = value  # a keyword array: a term query matches any of its items
        elif isinstance(value, bool | int | float) and math.isfinite(value):
            numbers[key] = float(value)
    return {META_TEXT: texts, META_NUMBER: numbers, META_KEYS: keys}


def search_text(title: str, heading: str, text: str) -> str:
    """The BM25 field's value: each part repeated by its weight (title twice)."""
    parts = zip((title, heading, text), TEXT_REPEATS, strict=True)
    return "\n".join(part for part, times in parts for _ in range(times) if part)


def chunk_index_name(prefix: str, tenant: str) -> str:
    """A tenant's own chunk index (its silo)."""
    return f"{prefix}chunks-{validate_tenant(tenant)}"


def pool_index_name(prefix: str, number: int) -> str:
    """A chunk index shared by small tenants. Never a silo's name: those start ``chunks-``."""
    return f"{prefix}pool-{number}"


def record_id(tenant: str, doc_id: str) -> str:
    """A document record's ``_id`` in the shared records index."""
    return f"{tenant}:{doc_id}"
