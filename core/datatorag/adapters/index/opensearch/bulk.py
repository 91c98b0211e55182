"""Chunks into a chunk index with the ``_bulk`` API, through opensearch-py's
``helpers.streaming_bulk``: batches bounded by count and bytes, chunks the cluster rejects with
429 (its write queue is full) sent again with exponential back-off. Every chunk carries its
tenant, as a field (what searches filter on) and as its ``routing`` (which shard holds it; the
chunk indices require one), both from the record: see ``scope.py``.

https://docs.opensearch.org/latest/api-reference/document-apis/bulk/ and
https://opensearch-project.github.io/opensearch-py/api-ref/helpers/actions.html
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from opensearchpy import OpenSearch
from opensearchpy.helpers import streaming_bulk

from datatorag.adapters.index.opensearch.client import (
    IndexRequestRejected,
    SearchIndexUnavailable,
)
from datatorag.adapters.index.opensearch.mappings import (
    SEARCH_FIELD,
    TENANT_FIELD,
    VECTOR_FIELD,
    Body,
    metadata_fields,
    search_text,
)
from datatorag.domain.errors import DatatoRAGError
from datatorag.domain.models import IndexedChunk, utcnow
from datatorag.domain.tenants import validate_tenant

BULK_BATCH = 500  # chunks per _bulk request
BULK_MAX_BYTES = 8 * 1024 * 1024  # Amazon OpenSearch Service takes 10 MiB on small instances
BULK_RETRIES = 3  # times a chunk rejected with 429 is sent again, after 1, 2 then 4 s
BULK_MAX_BACKOFF_S = 8


def index_chunks(
    client: OpenSearch,
    index: str,
    generation: str,
    record: Body,
    title: str,
    chunks: Sequence[IndexedChunk],
    vectors: npt.NDArray[np.float32],
    field: str = VECTOR_FIELD,
) -> None:
    """Index one document's chunks under ``generation``, their vectors in ``field``; when this
    returns they are all searchable (every batch is sent with ``refresh=wait_for``, which waits
    for the next refresh rather than forcing one).

    Raises ``SearchIndexUnavailable`` when chunks were still rejected with 429 (or a 5xx) after
    the retries, ``IndexRequestRejected`` when the cluster refused a chunk (mapping or
    validation): then some chunks of ``generation`` may be indexed, unreferenced.
    """
    tenant = validate_tenant(record["tenant"])
    shared = {
        TENANT_FIELD: tenant,
        "generation": generation,
        "version": record["version"],
        "title": title,
        "source_id": record["source_id"],
        "source_uri": record["source_uri"],
        "media_type": record["media_type"],
        "indexed_at": utcnow().isoformat(),
        **metadata_fields(record.get("metadata") or {}),
    }
    actions = (
        _action(index, generation, chunk, {field: vector.tolist()}, shared)
        for chunk, vector in zip(chunks, vectors, strict=True)
    )
    _send(client, actions)


def update_vectors(
    client: OpenSearch, index: str, tenant: str, field: str, vectors: dict[str, list[float]]
) -> int:
    """Set ``field`` of the tenant's chunks named by ``_id`` (partial ``update`` actions: the
    rest of each chunk is kept); returns how many were updated. A chunk that is gone (its
    document changed meanwhile) is skipped: the swap finds its successor without the field.
    Sent without a refresh (a re-embed would wait a refresh interval per document): the swap
    refreshes once before it checks.

    https://docs.opensearch.org/latest/api-reference/document-apis/bulk/ (``update``)
    """
    actions = (
        {
            "_op_type": "update",
            "_index": index,
            "_id": chunk_id,
            "routing": validate_tenant(tenant),
            "doc": {field: vector},
        }
        for chunk_id, vector in vectors.items()
    )
    return len(vectors) - _send(client, actions, skip_missing=True, refresh=False)


def _send(
    client: OpenSearch,
    actions: Iterator[Body],
    *,
    skip_missing: bool = False,
    refresh: str | bool = "wait_for",
) -> int:
    """Send ``actions`` in bounded ``_bulk`` requests, 429s again with back-off; returns how
    many were skipped because their document is missing (404), with ``skip_missing``."""
    results = streaming_bulk(
        client,
        actions,
        chunk_size=BULK_BATCH,
        max_chunk_bytes=BULK_MAX_BYTES,
        raise_on_error=False,  # else failed chunks raise before the 429 retries see them
        max_retries=BULK_RETRIES,
        initial_backoff=1,
        max_backoff=BULK_MAX_BACKOFF_S,
        yield_ok=False,
        refresh=refresh,
    )
    failed = [item for ok, result in results if not ok for item in result.values()]
    missing = [f for f in failed if skip_missing and f.get("status") == 404]
    if len(missing) < len(failed):
        raise _failure([f for f in failed if f not in missing])
    return len(missing)


def _action(index: str, generation: str, chunk: IndexedChunk, vector: Body, shared: Body) -> Body:
    """One ``index`` action: its metadata and, in ``_source``, the chunk's document."""
    return {
        "_index": index,
        "_id": f"{generation}:{chunk.chunk_id}",
        "routing": shared[TENANT_FIELD],
        "_source": {
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
            **vector,
        },
    }


def _failure(failed: list[dict[str, Any]]) -> DatatoRAGError:
    """The error for chunks the cluster did not index: retryable when it was overloaded."""
    statuses = {int(f.get("status") or 0) for f in failed}
    first = failed[0].get("error") or {}
    reason = f"{first.get('type')}: {first.get('reason')}" if isinstance(first, dict) else first
    detail = f"{len(failed)} chunk(s) not indexed; first: {reason}"
    if any(s == 429 or s >= 500 for s in statuses):
        return SearchIndexUnavailable(detail)
    return IndexRequestRejected(detail)
