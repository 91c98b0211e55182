"""``SearchIndex`` on OpenSearch (Amazon OpenSearch Service 2.x and 3.x), through opensearch-py.

Indices (``prefix`` defaults to ``datatorag-``):

- ``<prefix>pool-<n>``: chunks of small tenants, shared; ``<prefix>chunks-<tenant>``: a large
  tenant's own (its silo). Which one holds a tenant is recorded in its manifest, and a pooled
  tenant moves to a silo when it reaches ``silo_min_documents`` (``placement.py``). Every chunk
  names its tenant, and every request to a chunk index, in a pool or a silo, is filtered on the
  tenant and routed by it (``scope.py``, the only code that sends them). In a pool the BM25
  statistics (document frequencies, average length) are the pool's, not the tenant's.
- ``<prefix>documents``: every tenant's document records (no vectors, small), ``_id`` =
  ``<tenant>:<doc_id>``. Shared to save shards; every search on it filters on the ``tenant`` term
  and every get names the tenant in the id.
- ``<prefix>manifests``: one document per tenant (``_id`` = tenant) saying which *generation* of
  each document's chunks is visible. Stored only (``dynamic: false``): never searched.

Where the rest lives: ``mappings.py`` (the indices and what a chunk holds: vectors, text,
metadata), ``indices.py`` (chunk indices created on first write, their vector fields),
``queries.py`` (searches and filters as query bodies), ``bulk.py`` (chunks in),
``manifest.py`` (the atomic version swap and its guarantee), ``placement.py`` (pool or silo, and
the move), ``spaces.py`` (re-embedding a tenant into another embedding space: staged vectors,
one swap), ``scope.py`` (tenant filter and routing), ``client.py`` (the client, its errors,
conditional writes).

Hybrid search is the query service's RRF over ``keyword_search`` and ``vector_search``;
``ensure_hybrid_pipeline`` creates the server-side alternative, a search pipeline with the
``normalization-processor`` for a ``hybrid`` query. The adapter sends no HTTP DELETE (the
connector's and processor's IAM roles may not have ``es:ESHttpDelete``): deletes are
``_delete_by_query`` POSTs.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError

from datatorag.adapters.index.opensearch.bulk import index_chunks
from datatorag.adapters.index.opensearch.client import (
    Documents,
    IndexRequestRejected,
    SearchIndexUnavailable,
    Stored,
    opensearch_client,
    translated,
)
from datatorag.adapters.index.opensearch.indices import ChunkIndices, reembedded_fields
from datatorag.adapters.index.opensearch.manifest import (
    DEFAULT_RETIRE_GRACE_S,
    Manifests,
    PlacementChanged,
    View,
    Written,
    vector_field,
)
from datatorag.adapters.index.opensearch.mappings import (
    ACTIVE,
    VECTOR_FIELD,
    Body,
    documents_index_body,
    hybrid_pipeline_body,
    record_id,
)
from datatorag.adapters.index.opensearch.placement import (
    DEFAULT_POOL_INDICES,
    DEFAULT_SILO_MIN_DOCUMENTS,
    Layout,
    move_to_silo,
)
from datatorag.adapters.index.opensearch.queries import (
    MAX_K,
    check_top_k,
    cosine,
    filter_clauses,
    hit,
    keyword_query,
    keyword_words,
    vector_query,
)
from datatorag.adapters.index.opensearch.scope import ChunkRequests, tenant_filters
from datatorag.adapters.index.opensearch.spaces import SpaceMoves
from datatorag.domain.errors import VectorSpaceMismatch
from datatorag.domain.models import (
    DocumentFacts,
    DocumentRecord,
    DocumentStatus,
    IndexedChunk,
    SearchHit,
    utcnow,
)
from datatorag.domain.spaces import space_dimension
from datatorag.domain.tenants import validate_tenant
from datatorag.domain.vectors import chunk_vectors, unit_vector
from datatorag.ports import Filters
from datatorag.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "datatorag-"
SEARCH_ATTEMPTS = 3
PLACEMENT_CHANGES = 5  # moves a write may meet between its bulk and its commit


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
        pooled: bool = True,
        pool_indices: int = DEFAULT_POOL_INDICES,
        silo_min_documents: int = DEFAULT_SILO_MIN_DOCUMENTS,
    ) -> None:
        """``dimension`` fixes the vector size of new chunk indices (else the first chunks').
        ``pooled``: new tenants start in a shared pool index (else in their own); see
        ``placement.py`` for ``pool_indices`` and ``silo_min_documents``."""
        self.client = client
        self.prefix = prefix
        self.dimension = dimension
        self.replicas = replicas
        self.retire_grace_s = retire_grace_s
        self.layout = Layout(prefix, pooled, pool_indices, silo_min_documents)
        self.documents_index = f"{prefix}documents"
        self.manifests_index = f"{prefix}manifests"
        self._docs = Documents(client)
        self._chunks = ChunkRequests(client)
        self._manifests = Manifests(
            self._docs,
            self._chunks,
            self.layout,
            replicas=replicas,
            retire_grace_s=retire_grace_s,
        )
        self._indices = ChunkIndices(client, self._docs, dimension=dimension, replicas=replicas)
        self._spaces = SpaceMoves(
            self._docs, self._chunks, self._manifests, self._indices.ensure_field
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenSearchIndex:
        return cls(
            opensearch_client(settings),
            prefix=settings.opensearch_index_prefix,
            replicas=settings.opensearch_replicas,
            pooled=settings.opensearch_layout == "pooled",
            pool_indices=settings.opensearch_pool_indices,
            silo_min_documents=settings.opensearch_silo_min_documents,
        )

    @translated
    def chunk_index(self, tenant: str) -> str:
        """The index a search of ``tenant`` reads now (its pool or its silo)."""
        validate_tenant(tenant)
        return self._manifests.placement(tenant).index

    def close(self) -> None:
        self.client.close()

    # -- documents ---------------------------------------------------------------------------

    @translated
    def upsert_document(self, doc: DocumentRecord) -> None:
        validate_tenant(doc.tenant)
        self._docs.ensure_index(self.documents_index, documents_index_body(replicas=self.replicas))
        fresh = doc.model_dump(mode="json")

        def replace(current: Stored | None) -> Body:
            # The visible generation is the index's business, not the caller's: keep it.
            return {**fresh, ACTIVE: current.source.get(ACTIVE) if current else None}

        self._docs.occ(self.documents_index, record_id(doc.tenant, doc.doc_id), replace)

    @translated
    def get_document(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        validate_tenant(tenant)
        stored = self._docs.get(self.documents_index, record_id(tenant, doc_id))
        return _record(stored.source) if stored else None

    @translated
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
            hits = self._docs.search_hits(
                self.documents_index, {**body, "from": offset, "size": limit}
            )
        else:  # past the result window: walk with search_after
            hits = list(
                itertools.islice(
                    self._docs.walk(self.documents_index, query, sort), offset, offset + limit
                )
            )
        return [h["_source"] for h in hits]

    @translated
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

        def update(current: Stored | None) -> Body | None:
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
            return {
                **record,
                "status": status.value,
                "reason": reason,
                "updated_at": utcnow().isoformat(),
            }

        written = self._docs.occ(self.documents_index, record_id(tenant, doc_id), update)
        if written is not None and status == DocumentStatus.DELETED:
            self._manifests.settle(tenant, doc_id)
        return written is not None

    @translated
    def delete_document(self, tenant: str, doc_id: str) -> None:
        validate_tenant(tenant)
        exists = False

        def delete(current: Stored | None) -> Body | None:
            nonlocal exists
            exists = current is not None
            if current is None or current.source["status"] == DocumentStatus.DELETED:
                return None
            return _deleted(current.source, None)

        self._docs.occ(self.documents_index, record_id(tenant, doc_id), delete)
        if exists:  # also when already deleted: finishes a delete that crashed half way
            self._manifests.settle(tenant, doc_id)

    # -- chunks ------------------------------------------------------------------------------

    @translated
    def replace_chunks(
        self,
        tenant: str,
        doc_id: str,
        version: str,
        chunks: Sequence[IndexedChunk],
        *,
        facts: DocumentFacts | None = None,
        space: str | None = None,
    ) -> bool:
        validate_tenant(tenant)
        facts = facts or DocumentFacts()
        vectors = chunk_vectors(doc_id, chunks)
        key = record_id(tenant, doc_id)
        current = self._docs.get(self.documents_index, key)
        if current is None or not _is_current(current.source, version):
            return False
        if space is not None:
            self._manifests.claim_space(tenant, space)
        placement, field = self._manifests.target(tenant)
        wrote = placement.write_indices
        title = facts.title or current.source["title"]
        # What the document says about itself; the record's own (source) metadata wins.
        metadata = {**facts.metadata, **(current.source.get("metadata") or {})}
        generation = uuid.uuid4().hex
        record = {**current.source, "metadata": metadata}

        def write(index: str) -> None:
            if len(chunks):
                self._indices.ensure_field(index, field, vectors.shape[1])
            index_chunks(self.client, index, generation, record, title, chunks, vectors, field)

        try:
            for index in sorted(wrote):
                write(index)
        except (SearchIndexUnavailable, IndexRequestRejected):
            self._manifests.drop_unreferenced(tenant, generation, wrote)
            raise

        def commit(stored: Stored | None) -> Body | None:
            if stored is None or not _is_current(stored.source, version):
                return None
            record = stored.source
            page_count = facts.page_count
            return {
                **record,
                "status": DocumentStatus.INDEXED.value,
                "reason": None,
                "chunk_count": len(chunks),
                "title": title,
                "metadata": {**facts.metadata, **(record.get("metadata") or {})},
                "page_count": record.get("page_count") if page_count is None else page_count,
                "updated_at": utcnow().isoformat(),
                ACTIVE: generation,
            }

        if self._docs.occ(self.documents_index, key, commit) is None:
            self._manifests.drop_unreferenced(tenant, generation, wrote)
            return False
        manifest = self._settle_written(tenant, doc_id, Written(generation, wrote), write)
        if manifest is not None and vector_field(manifest) != field:
            # A re-embed swapped the tenant's space since this write began: its vectors are in
            # the old field, which searches no longer read; the retry embeds in the new space.
            raise VectorSpaceMismatch(tenant, str(manifest.get("space")), str(space))
        if manifest is not None:
            self._grow(tenant, manifest)
        return True

    def _settle_written(
        self, tenant: str, doc_id: str, written: Written, write: Callable[[str], None]
    ) -> Body | None:
        """Commit a generation to the manifest, first indexing it wherever a move that started
        or ended since its bulk now needs it (``PlacementChanged``)."""
        for _ in range(PLACEMENT_CHANGES):
            try:
                return self._manifests.settle(tenant, doc_id, written)
            except PlacementChanged as changed:
                for index in sorted(changed.missing):
                    write(index)
                written = Written(written.generation, written.indices | changed.missing)
        raise SearchIndexUnavailable(f"tenant {tenant!r} kept moving during a write")

    def _grow(self, tenant: str, manifest: Body) -> None:
        """Move a pooled tenant that reached the threshold to its own index (or finish a move
        that stopped): the write is committed whatever happens here."""
        placement = self.layout.placement(tenant, manifest)
        if not self.layout.wants_silo(placement, len(manifest.get("active") or {})):
            return
        try:
            self.move_to_silo(tenant)
        except Exception:  # the next write tries again: its manifest still says so
            log.exception("moving tenant %s to its own index failed", tenant)

    @translated
    def move_to_silo(self, tenant: str) -> bool:
        """Move a pooled tenant into its own index without downtime (``placement.py``); False
        when it is not in a pool."""
        validate_tenant(tenant)
        source = self._manifests.placement(tenant).index

        def create(silo: str) -> None:  # with the tenant's vector fields: the copy fills them
            self._indices.ensure(silo, self._indices.dimension_of(source))
            manifest = self._docs.get(self.manifests_index, tenant)
            for space, field in reembedded_fields(manifest.source if manifest else None):
                self._indices.ensure_field(silo, field, space_dimension(space))

        moved = move_to_silo(
            self._docs, self._chunks, self.layout, self.manifests_index, tenant, create
        )
        if moved:
            log.info("tenant %s moved from %s to its own index", tenant, source)
        return moved

    @translated
    def vector_space(self, tenant: str) -> str | None:
        validate_tenant(tenant)
        return self._manifests.space(tenant)

    @translated
    def stage_vectors(
        self, tenant: str, space: str, vectors: Mapping[str, Sequence[float]]
    ) -> None:
        validate_tenant(tenant)
        self._spaces.stage(tenant, space, vectors)

    @translated
    def swap_space(self, tenant: str, space: str) -> list[str]:
        validate_tenant(tenant)
        return self._spaces.swap(tenant, space)

    @translated
    def purge(self, tenant: str, *, orphans: bool = True) -> int:
        """Delete chunks no search can see any more; returns how many were deleted (see
        ``Manifests.purge``)."""
        return self._manifests.purge(tenant, orphans=orphans)

    # -- search ------------------------------------------------------------------------------

    @translated
    def keyword_search(
        self, tenant: str, query: str, top_k: int, filters: Filters | None = None
    ) -> list[SearchHit]:
        validate_tenant(tenant)
        clauses = filter_clauses(filters)
        words = keyword_words(query)
        top_k = check_top_k(top_k)
        if not words or top_k == 0:
            return []

        def body(view: View) -> Body:
            visible = tenant_filters(tenant, [{"terms": {"generation": view.active}}, *clauses])
            return keyword_query(words, top_k, visible)

        hits = self._search_visible(tenant, body)
        return [hit(h, float(h["_score"])) for h in hits]

    @translated
    def vector_search(
        self,
        tenant: str,
        vector: Sequence[float],
        top_k: int,
        filters: Filters | None = None,
        *,
        space: str | None = None,
    ) -> list[SearchHit]:
        validate_tenant(tenant)
        clauses = filter_clauses(filters)
        query = unit_vector(np.asarray(vector, dtype=np.float32), "query vector")
        top_k = check_top_k(top_k)
        if top_k == 0:
            return []
        values: list[float] = query.tolist()

        def body(view: View) -> Body | None:
            if view.field == VECTOR_FIELD:
                dimension = self._indices.dimension_of(view.placement.index)
            else:  # a re-embedded tenant's field: its space's size (``spaces.py``)
                dimension = space_dimension(str(view.space))
            if dimension is None:
                return None
            if query.shape[0] != dimension:
                raise ValueError(
                    f"query vector has {query.shape[0]} dimensions; the index holds {dimension}"
                )
            visible = tenant_filters(tenant, [{"terms": {"generation": view.active}}, *clauses])
            return vector_query(values, top_k, visible, view.field)

        hits = self._search_visible(tenant, body, space)
        return [hit(h, cosine(float(h["_score"]))) for h in hits]

    def _search_visible(
        self,
        tenant: str,
        body: Callable[[View], Body | None],
        space: str | None = None,
    ) -> list[Body]:
        """Hits among the generations the manifest names, in the index it names, read once per
        attempt (``body`` None: nothing to search); with ``space``, only when the manifest's
        space is that one.

        An attempt slower than half the retirement grace is repeated: its generations might
        have been purged under it.
        """
        for _ in range(SEARCH_ATTEMPTS):
            started = time.monotonic()
            view = self._manifests.visible(tenant)
            if space is not None and view.space is not None and view.space != space:
                raise VectorSpaceMismatch(tenant, view.space, space)
            if not view.active:
                return []
            request = body(view)
            if request is None:
                return []
            try:
                hits = self._chunks.search(tenant, view.placement.index, request)
            except NotFoundError:
                return []  # only empty documents were ever indexed
            if time.monotonic() - started <= self.retire_grace_s / 2:
                return hits
        raise SearchIndexUnavailable(
            f"searches of tenant {tenant!r} took longer than {self.retire_grace_s / 2:g} s "
            f"{SEARCH_ATTEMPTS} times in a row"
        )

    # -- hybrid (server side) ----------------------------------------------------------------

    @translated
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
        "updated_at": utcnow().isoformat(),
        ACTIVE: None,
    }
