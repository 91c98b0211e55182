"""Every request to a chunk index, scoped to one tenant: the only code that sends them.

A chunk index is shared by many tenants (a pool) or holds one (a silo); the same rules hold in
both, so no code path depends on which it is:

- every query is the tenant's share: ``tenant_filters`` puts the ``tenant`` term first among the
  bool ``filter`` clauses (inside the knn clause for a vector search: efficient filtering, so k
  counts only the tenant's chunks,
  https://docs.opensearch.org/latest/vector-search/filter-search-knn/efficient-knn-filtering/);
- every request is sent with ``routing=<tenant>``, so it reaches only the shard holding the
  tenant's chunks (https://docs.opensearch.org/latest/mappings/metadata-fields/routing/); the
  chunks are indexed with that routing (``bulk.py``), which the mapping requires.

``ChunkRequests`` adds the routing itself and refuses, before anything is sent, a body whose
query is not scoped to the tenant it names (``UnscopedRequest``): a query built without
``tenant_filters`` cannot reach the cluster. ``_reindex`` is the one request without a routing
parameter (its ``source`` takes none); its source query is scoped like every other and its
destination keeps the tenant's routing. A re-embed's requests (``spaces.py``) come here too: the
search for chunks still missing a vector, the partial ``update`` actions that stage vectors
(each routed by the tenant, by chunk ``_id``), and the ``_update_by_query`` that drops the
vectors the tenant left.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError

from datatorag.adapters.index.opensearch.bulk import update_vectors
from datatorag.adapters.index.opensearch.mappings import TENANT_FIELD, Body
from datatorag.domain.errors import DatatoRAGError
from datatorag.domain.tenants import validate_tenant

COPY_TIMEOUT_S = 3600  # a _reindex of a tenant at the silo threshold takes minutes, not hours
PAGE = 1000  # chunk ids per page of ``chunk_ids``
# Drops one field from a chunk's _source; a chunk without it is left alone (noop).
REMOVE_FIELD = (
    "if (ctx._source.containsKey(params.field)) { ctx._source.remove(params.field) } "
    "else { ctx.op = 'noop' }"
)


class UnscopedRequest(DatatoRAGError):
    """A chunk request whose query is not limited to one tenant: a bug, never sent."""


def tenant_filters(tenant: str, clauses: list[Body]) -> list[Body]:
    """Bool ``filter`` clauses limited to ``tenant``: the one place that writes the tenant term."""
    return [{"term": {TENANT_FIELD: validate_tenant(tenant)}}, *clauses]


def tenant_query(tenant: str, *clauses: Body) -> Body:
    """A query matching the tenant's chunks that match every clause."""
    return {"bool": {"filter": tenant_filters(tenant, list(clauses))}}


def is_scoped(query: Any, tenant: str) -> bool:
    """Whether ``query`` can only match ``tenant``'s chunks: a bool query whose ``filter`` holds
    the tenant's term, or a knn query whose ``filter`` is one."""
    if not isinstance(query, dict) or len(query) != 1:
        return False
    [(kind, body)] = query.items()
    if kind == "bool" and isinstance(body, dict):
        filters = body.get("filter")
        return isinstance(filters, list) and {"term": {TENANT_FIELD: tenant}} in filters
    if kind == "knn" and isinstance(body, dict) and len(body) == 1:
        [field] = body.values()
        return isinstance(field, dict) and is_scoped(field.get("filter"), tenant)
    return False


class ChunkRequests:
    """Searches, deletes and copies of one tenant's chunks, scoped and routed."""

    def __init__(self, client: OpenSearch) -> None:
        self.client = client

    def search(self, tenant: str, index: str, body: Body) -> list[Body]:
        _check(tenant, body.get("query"))
        response = self.client.search(index=index, body=body, routing=tenant)
        hits: list[Body] = response["hits"]["hits"]
        return hits

    def chunk_ids(self, tenant: str, index: str, query: Body) -> Iterator[str]:
        """The ``chunk_id`` of every matching chunk, in order, a page at a time
        (``search_after`` on ``chunk_id``, unique among a tenant's visible generations)."""
        after: list[Any] | None = None
        while True:
            body: Body = {
                "query": query,
                "sort": [{"chunk_id": "asc"}],
                "size": PAGE,
                "_source": ["chunk_id"],
                "track_total_hits": False,
            }
            if after is not None:
                body["search_after"] = after
            try:
                hits = self.search(tenant, index, body)
            except NotFoundError:
                return
            yield from (str(h["_source"]["chunk_id"]) for h in hits)
            if len(hits) < PAGE:
                return
            after = hits[-1]["sort"]

    def set_vectors(
        self, tenant: str, index: str, field: str, vectors: dict[str, list[float]]
    ) -> int:
        """Set ``field`` on the tenant's chunks by ``_id`` (``bulk.update_vectors``, routed)."""
        return update_vectors(self.client, index, tenant, field, vectors)

    def refresh(self, index: str) -> None:
        """Make every write to ``index`` so far visible to searches (reads no document)."""
        self.client.indices.refresh(index=index, ignore=404)

    def remove_field(self, tenant: str, index: str, field: str) -> int:
        """Drop ``field`` from every chunk of the tenant that has it (``_update_by_query`` with
        a painless script); returns how many chunks changed.

        https://docs.opensearch.org/latest/api-reference/document-apis/update-by-query/
        """
        query = tenant_query(tenant, {"exists": {"field": field}})
        _check(tenant, query)
        script = {"source": REMOVE_FIELD, "lang": "painless", "params": {"field": field}}
        try:
            response = self.client.update_by_query(
                index=index,
                body={"query": query, "script": script},
                routing=tenant,
                conflicts="proceed",
                refresh=True,
                request_timeout=COPY_TIMEOUT_S,
            )
        except NotFoundError:
            return 0
        return int(response.get("updated", 0))

    def delete(self, tenant: str, index: str, query: Body) -> int:
        """Delete the matching chunks (``_delete_by_query``, a POST: no HTTP DELETE is sent)."""
        _check(tenant, query)
        try:
            response = self.client.delete_by_query(
                index=index,
                body={"query": query},
                routing=tenant,
                conflicts="proceed",
                request_timeout=120,
            )
        except NotFoundError:
            return 0
        return int(response.get("deleted", 0))

    def copy(self, tenant: str, source: str, dest: str) -> Body:
        """Copy every chunk of the tenant from ``source`` to ``dest`` (``_reindex``), refreshed
        before this returns; copying again overwrites (same ids), so a move can resume.

        https://docs.opensearch.org/latest/api-reference/document-apis/reindex/
        """
        body: Body = {
            "source": {"index": source, "query": tenant_query(tenant)},
            "dest": {"index": dest, "routing": f"={tenant}"},
        }
        _check(tenant, body["source"]["query"])
        response: Body = self.client.reindex(
            body=body, refresh=True, wait_for_completion=True, request_timeout=COPY_TIMEOUT_S
        )
        return response


def _check(tenant: str, query: Any) -> None:
    validate_tenant(tenant)
    if not is_scoped(query, tenant):
        raise UnscopedRequest(f"refused to send a chunk query not limited to tenant {tenant!r}")
