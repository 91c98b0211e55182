"""The commit protocol: which generation of each document's chunks a search sees.

Atomic version swap. OpenSearch has no multi-document transactions, so visibility goes through
one document per tenant, the manifest, whose single-document write is the commit point:

1. ``replace_chunks`` reads the document record and refuses a stale version (writes nothing).
2. It bulk-indexes the chunks (``bulk.py``) under a fresh ``generation`` id, with
   ``refresh=wait_for``: they are searchable before anything refers to them.
3. It marks the record indexed with ``active_generation`` = that generation, conditional on the
   record's ``_seq_no``/``_primary_term`` (optimistic concurrency); if the version changed
   meanwhile it deletes its chunks and returns False.
4. It copies the record's ``active_generation`` into the manifest, again conditional on the
   manifest's ``_seq_no``; the generation it replaces is listed as retired, with the time.

The manifest also names the embedding space of the tenant's vectors (``space``, set by the
first write that says, ``claim_space``) and the field holding them (``vector_field``, absent:
``embedding``): a write or a vector search in another space raises ``VectorSpaceMismatch``.
Re-embedding moves a tenant to another space and field in one manifest write (``spaces.py``);
the field it leaves is listed in ``retired_fields`` and emptied after the grace, like retired
generations.

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

The manifest also records where the tenant's chunks live (``placement.py``): a generation is
named only once it is complete in every index the placement writes to (``sync`` checks, at the
commit point, against what the writer wrote), and the chunks a tenant left behind in a pool are
deleted, like retired generations, once the grace has passed.

Limits: the manifest is rewritten on every swap and read by every search; at ~60 bytes a
document it suits tenants up to tens of thousands of documents (a terms lookup on the manifest
would save shipping it for larger ones). ``max_terms_count`` (65 536) bounds the active
documents per tenant. A search returns at most 10 000 hits (knn's maximum ``k``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from opensearchpy.exceptions import NotFoundError, TransportError

from datatorag.adapters.index.opensearch.client import Documents, Stored
from datatorag.adapters.index.opensearch.mappings import (
    ACTIVE,
    VECTOR_FIELD,
    Body,
    manifests_index_body,
    record_id,
    space_field,
)
from datatorag.adapters.index.opensearch.placement import Layout, Placement
from datatorag.adapters.index.opensearch.scope import ChunkRequests, tenant_query
from datatorag.domain.errors import VectorSpaceMismatch
from datatorag.domain.tenants import validate_tenant

log = logging.getLogger(__name__)

DEFAULT_RETIRE_GRACE_S = 60.0
ORPHAN_AGE_S = 3600  # unreferenced chunks older than this belong to a crashed swap


@dataclass(frozen=True)
class Written:
    """A generation a writer indexed, and the indices it is complete in."""

    generation: str
    indices: frozenset[str]


@dataclass(frozen=True)
class View:
    """What a search reads in the manifest."""

    active: list[str]  # the visible generations
    placement: Placement
    space: str | None  # the embedding space of the tenant's vectors
    field: str  # the field holding them


def vector_field(manifest: Body | None) -> str:
    """The field holding the tenant's searched vectors."""
    return str((manifest or {}).get("vector_field") or VECTOR_FIELD)


class PlacementChanged(Exception):
    """The tenant's placement changed under a writer: its generation is missing from
    ``missing``, where it must be indexed before the manifest may name it."""

    def __init__(self, missing: frozenset[str]) -> None:
        super().__init__(f"generation missing from {sorted(missing)}")
        self.missing = missing


class Manifests:
    """One manifest per tenant in ``<prefix>manifests``, kept in step with the records."""

    def __init__(
        self,
        docs: Documents,
        chunks: ChunkRequests,
        layout: Layout,
        *,
        replicas: int,
        retire_grace_s: float = DEFAULT_RETIRE_GRACE_S,
    ) -> None:
        self.docs = docs
        self.chunks = chunks
        self.layout = layout
        self.client = docs.client
        self.replicas = replicas
        self.retire_grace_s = retire_grace_s
        self.documents_index = f"{layout.prefix}documents"
        self.manifests_index = f"{layout.prefix}manifests"

    def settle(self, tenant: str, doc_id: str, written: Written | None = None) -> Body | None:
        """Make the manifest show the record's generation, then drop what is long retired;
        returns the manifest as this left it (None when the tenant has none)."""
        manifest = self.sync(tenant, doc_id, written)
        if manifest is not None:
            self._purge_retired(tenant, manifest)
        return manifest

    def placement(self, tenant: str) -> Placement:
        manifest = self.docs.get(self.manifests_index, tenant)
        return self.layout.placement(tenant, manifest.source if manifest else None)

    def sync(self, tenant: str, doc_id: str, written: Written | None = None) -> Body | None:
        """Copy the record's active generation into the tenant's manifest (the commit point).

        The record is read after the manifest, and the manifest written only if unchanged
        since, so the last writer always writes the record's latest generation. When that is
        ``written``'s generation, it must be complete in every index the placement writes to:
        else nothing is written and ``PlacementChanged`` says where it is missing.
        """
        self.docs.ensure_index(self.manifests_index, manifests_index_body(replicas=self.replicas))
        latest: Body | None = None
        missing: frozenset[str] = frozenset()

        def follow(current: Stored | None) -> Body | None:
            nonlocal latest, missing
            placement = self.layout.placement(tenant, current.source if current else None)
            empty: Body = {
                "tenant": tenant,
                "active": {},
                "retired": [],
                "placement": placement.body(),
            }
            manifest = current.source if current else empty
            latest = manifest
            record = self.docs.get(self.documents_index, record_id(tenant, doc_id))
            want = record.source.get(ACTIVE) if record else None
            have = manifest["active"].get(doc_id)
            if want == have:
                return None
            if written is not None and want == written.generation:
                missing = placement.write_indices - written.indices
                if missing:
                    return None
            active = {k: v for k, v in manifest["active"].items() if k != doc_id}
            if want is not None:
                active[doc_id] = want
            retired = list(manifest.get("retired", []))
            if have is not None:
                retired.append({"doc_id": doc_id, "generation": have, "at": time.time()})
            latest = {**manifest, "active": active, "retired": retired}
            return latest

        self.docs.occ(self.manifests_index, tenant, follow)
        if missing:
            raise PlacementChanged(missing)
        return latest

    def visible(self, tenant: str) -> View:
        """What a search reads: the active generations, the index holding them, and the
        embedding space their vectors are in, and their field."""
        response = self.client.get(
            index=self.manifests_index,
            id=tenant,
            _source_includes="active,placement,space,vector_field",
            ignore=404,
        )
        source = response.get("_source")
        active = (source or {}).get("active") or {}
        return View(
            sorted(set(active.values())),
            self.layout.placement(tenant, source),
            (source or {}).get("space"),
            vector_field(source),
        )

    def space(self, tenant: str) -> str | None:
        return self.visible(tenant).space

    def target(self, tenant: str) -> tuple[Placement, str]:
        """Where a writer indexes a new generation: the placement and the vector field."""
        manifest = self.docs.get(self.manifests_index, tenant)
        source = manifest.source if manifest else None
        return self.layout.placement(tenant, source), vector_field(source)

    def claim_space(self, tenant: str, space: str) -> None:
        """Record ``space`` as the tenant's embedding space (``domain.spaces``), or raise
        ``VectorSpaceMismatch`` when its visible chunks are in another. A tenant with no
        visible chunks takes the new space; a manifest from before spaces were recorded is
        taken to hold this one (the only model such a deployment ran)."""
        self.docs.ensure_index(self.manifests_index, manifests_index_body(replicas=self.replicas))

        def claim(current: Stored | None) -> Body | None:
            placement = self.layout.placement(tenant, None).body()  # where a new tenant starts
            empty: Body = {"tenant": tenant, "active": {}, "placement": placement}
            manifest: Body = current.source if current else empty
            known = manifest.get("space")
            if known == space:
                return None
            if known is None:
                return {"retired": [], **manifest, "space": space}
            if manifest["active"]:
                raise VectorSpaceMismatch(tenant, known, space)
            # Another space's vectors go in that space's field (the old one may differ in size).
            return {"retired": [], **manifest, "space": space, "vector_field": space_field(space)}

        self.docs.occ(self.manifests_index, tenant, claim)

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
        manifest = self.docs.get(self.manifests_index, tenant)
        deleted = self._purge_retired(tenant, manifest.source) if manifest else 0
        if orphans:
            manifest = self.docs.get(self.manifests_index, tenant)
            source = manifest.source if manifest else None
            known: set[str] = set()
            if source is not None:
                known |= set(source["active"].values())
                known |= {r["generation"] for r in source.get("retired", [])}
            query: Body = {"range": {"indexed_at": {"lt": f"now-{ORPHAN_AGE_S}s"}}}
            unknown = [{"terms": {"generation": sorted(known)}}] if known else []
            indices = self.layout.placement(tenant, source).write_indices
            deleted += self._delete_by_query(tenant, query, indices, must_not=unknown)
        return deleted

    def _repair(self, tenant: str) -> None:
        """Bring the manifest in line with the records (after a crash between the two writes)."""
        try:
            self.client.indices.refresh(index=self.documents_index)
        except NotFoundError:
            return
        records = {
            hit["_source"]["doc_id"]: hit["_source"].get(ACTIVE)
            for hit in self.docs.walk(
                self.documents_index,
                {"bool": {"filter": [{"term": {"tenant": tenant}}]}},
                [{"doc_id": "asc"}],
                source=["doc_id", ACTIVE],
            )
        }
        manifest = self.docs.get(self.manifests_index, tenant)
        active = manifest.source["active"] if manifest else {}
        for doc_id in sorted(set(records) | set(active)):
            if records.get(doc_id) != active.get(doc_id):
                self.sync(tenant, doc_id)

    def _purge_retired(self, tenant: str, manifest: Body) -> int:
        """Delete the generations retired, and the indices vacated, longer than the grace ago."""
        cutoff = time.time() - self.retire_grace_s
        due = sorted({r["generation"] for r in manifest.get("retired", []) if r["at"] <= cutoff})
        placement = self.layout.placement(tenant, manifest)
        left = {v.index for v in placement.vacated if v.at <= cutoff}
        fields = {f["field"] for f in manifest.get("retired_fields") or [] if f["at"] <= cutoff}
        if not due and not left and not fields:
            return 0
        indices = placement.write_indices
        deleted = self._delete_generations(tenant, due, indices) if due else 0
        for index in sorted(left):  # the copies left behind in a pool by a move to a silo
            deleted += self.chunks.delete(tenant, index, tenant_query(tenant))
        for field in sorted(fields):  # the vectors a re-embed replaced (``spaces.py``)
            for index in sorted(indices):
                self.chunks.remove_field(tenant, index, field)

        def forget(current: Stored | None) -> Body | None:
            if current is None:
                return None
            retired = current.source.get("retired", [])
            kept = [r for r in retired if r["generation"] not in due]
            now = self.layout.placement(tenant, current.source)
            vacated = tuple(v for v in now.vacated if v.index not in left)
            old_fields = current.source.get("retired_fields") or []
            kept_fields = [f for f in old_fields if f["field"] not in fields]
            if (len(kept), len(kept_fields)) == (len(retired), len(old_fields)) and (
                vacated == now.vacated
            ):
                return None
            placement = replace(now, vacated=vacated).body()
            return {
                **current.source,
                "retired": kept,
                "placement": placement,
                "retired_fields": kept_fields,
            }

        self.docs.occ(self.manifests_index, tenant, forget)
        return deleted

    def drop_unreferenced(self, tenant: str, generation: str, indices: frozenset[str]) -> None:
        """Best effort: nothing names these chunks, and ``purge`` sweeps what this leaves."""
        try:
            self._delete_generations(tenant, [generation], indices)
        except TransportError as err:
            log.warning("could not drop generation %s of tenant %s: %s", generation, tenant, err)

    def _delete_generations(
        self, tenant: str, generations: list[str], indices: frozenset[str]
    ) -> int:
        return self._delete_by_query(tenant, {"terms": {"generation": generations}}, indices)

    def _delete_by_query(
        self,
        tenant: str,
        query: Body,
        indices: frozenset[str],
        must_not: list[Body] | None = None,
    ) -> int:
        """Delete the tenant's chunks matching ``query`` from ``indices``."""
        scoped = tenant_query(tenant, query)
        if must_not:
            scoped["bool"]["must_not"] = must_not
        return sum(self.chunks.delete(tenant, index, scoped) for index in sorted(indices))
