"""Re-embedding a tenant (``SpaceMigration``): new vectors staged beside the searched ones, then
one manifest write that makes them the searched ones.

Each embedding space a tenant is re-embedded into has its own ``knn_vector`` field in the chunk
indices (``mappings.space_field``: ``embedding_<hash of the space>``, added to a live index with
``put_mapping``; a tenant never re-embedded keeps ``embedding``). The manifest names the field
searches read (``vector_field``), beside ``space``:

1. ``stage``: the manifest records the move under way (``staging``: space and field; one
   conditional write per re-embed, none after the first), the field is added to every index the
   placement writes to, and each chunk of a visible generation gets the new vector in that field
   by a partial ``update`` in ``_bulk`` (routed by tenant; no refresh: the swap refreshes once).
   Searches still read the old field: nothing they see changes. Staging for another space
   retires the earlier staging's field at once; a batch that arrives after another run swapped
   the tenant into the space is dropped.
2. ``swap``: after a refresh, the chunks of the visible generations that lack the field (an
   ``exists`` query in ``must_not``, in every index the placement writes to: where the field was
   not mapped when a chunk was written nothing matches, so it counts as missing too) are the
   missing ones: when there are any, nothing changes and their ids are returned. Else one
   conditional manifest write, made only if the visible generations and the placement are
   still those checked (else it checks again), switches ``space`` and ``vector_field``
   together: a search reads either the old space and field or the new ones, never a mix. The
   old field goes to ``retired_fields`` and is emptied from the tenant's chunks
   (``_update_by_query``) once the retirement grace has passed, by the next write or ``purge``
   (``Manifests``), so the index holds two vectors per chunk only while re-embedding.

A document written meanwhile is a new generation without the new field: it is missing at the
swap (the ``SpaceMigration`` contract), embedded in the next round. A writer that read the old
field before the swap and commits after it finds the manifest's field changed and raises
``VectorSpaceMismatch`` (``index.py``): its chunks carry no vector in the searched field, and its
retry embeds them in the new space. During a move to a silo the staged vectors go to both
indices, and the silo is created with the tenant's fields; a copy that raced the staging shows
up as missing in the silo and is staged again.

Requests (docs/embedding-spaces.md, counted by ``tests/unit/test_opensearch_spaces.py``): per
re-embedded document, a manifest get and one ``_bulk`` per index the placement writes to (two
while the tenant moves); per tenant, the staging write, per swap a manifest get, a refresh and
a search (a page per 1 000 missing ids) per index and a manifest write, a ``put_mapping`` per
index and field per process, and one ``_update_by_query`` per index after the grace.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from datatorag.adapters.index.opensearch.client import (
    Documents,
    SearchIndexUnavailable,
    Stored,
)
from datatorag.adapters.index.opensearch.manifest import Manifests, vector_field
from datatorag.adapters.index.opensearch.mappings import Body, space_field
from datatorag.adapters.index.opensearch.scope import ChunkRequests, tenant_query
from datatorag.domain.spaces import check_space, space_dimension
from datatorag.domain.vectors import unit_vector

SWAP_ATTEMPTS = 5  # checks repeated when the manifest changed between a check and its swap

EnsureField = Callable[[str, str, int], None]  # (index, field, dimension): map it if needed


class SpaceMoves:
    """``stage_vectors`` and ``swap_space`` of ``OpenSearchIndex`` (see the module docstring)."""

    def __init__(
        self, docs: Documents, chunks: ChunkRequests, manifests: Manifests, ensure: EnsureField
    ) -> None:
        self.docs = docs
        self.chunks = chunks
        self.manifests = manifests
        self.layout = manifests.layout
        self.index = manifests.manifests_index
        self.ensure = ensure

    def stage(self, tenant: str, space: str, vectors: Mapping[str, Sequence[float]]) -> None:
        """Write ``vectors`` (by chunk id) into the space's field (a chunk of a generation no
        longer visible is skipped)."""
        dimension = space_dimension(check_space(space))
        checked: dict[str, list[float]] = {}
        for chunk_id, values in vectors.items():
            vector = unit_vector(np.asarray(values, dtype=np.float32), f"vector of {chunk_id!r}")
            if vector.shape[0] != dimension:
                raise ValueError(
                    f"{space} vectors have {dimension} dimensions, not {vector.shape[0]}"
                )
            checked[chunk_id] = vector.tolist()
        field = space_field(space)
        manifest = self._begin(tenant, space, field)
        if manifest is None or not checked:
            return
        active: dict[str, str] = manifest["active"]
        by_id = {
            f"{active[doc_id]}:{chunk_id}": vector
            for chunk_id, vector in checked.items()
            if (doc_id := chunk_id.rsplit(":", 2)[0]) in active
        }
        for index in sorted(self.layout.placement(tenant, manifest).write_indices):
            self.ensure(index, field, dimension)
            self.chunks.set_vectors(tenant, index, field, by_id)

    def _begin(self, tenant: str, space: str, field: str) -> Body | None:
        """Record the staging in the manifest (once); returns the manifest, None when there is
        nothing to stage (no manifest, or the tenant is in ``space`` already: another run
        swapped it meanwhile)."""
        latest: Body | None = None

        def begin(current: Stored | None) -> Body | None:
            nonlocal latest
            latest = None
            if current is None or current.source.get("space") == space:
                return None
            manifest = latest = current.source
            staging = manifest.get("staging") or {}
            retired = manifest.get("retired_fields") or []
            kept = [f for f in retired if f["field"] != field]  # staged again: keep it
            if staging.get("field") == field and len(kept) == len(retired):
                return None
            if staging and staging["field"] != field:  # never searched: emptied at once
                kept.append({"field": staging["field"], "at": 0.0})
            latest = {**manifest, "staging": {"space": space, "field": field}}
            latest["retired_fields"] = kept
            return latest

        self.docs.occ(self.index, tenant, begin)
        return latest

    def swap(self, tenant: str, space: str) -> list[str]:
        """Make the staged field the searched one, or return the chunk ids lacking a vector."""
        check_space(space)
        field = space_field(space)
        for _ in range(SWAP_ATTEMPTS):
            stored = self.docs.get(self.index, tenant)
            if stored is None:  # nothing indexed: the tenant simply takes the space
                self.manifests.claim_space(tenant, space)
                return []
            manifest = stored.source
            if manifest.get("space") == space:
                return []
            missing = self._missing(tenant, manifest, space, field)
            if missing:
                return missing
            if self._commit(tenant, manifest, space, field):
                return []
        raise SearchIndexUnavailable(f"tenant {tenant!r} kept changing during its swap")

    def _missing(self, tenant: str, manifest: Body, space: str, field: str) -> list[str]:
        """The visible chunks without a vector staged in ``space``, sorted."""
        generations = sorted(set(manifest["active"].values()))
        if not generations:
            return []
        placement = self.layout.placement(tenant, manifest)
        visible = tenant_query(tenant, {"terms": {"generation": generations}})
        staged = (manifest.get("staging") or {}).get("space") == space
        if not staged:  # every chunk is missing
            return list(self.chunks.chunk_ids(tenant, placement.index, visible))
        visible["bool"]["must_not"] = [{"exists": {"field": field}}]
        missing: set[str] = set()
        for index in sorted(placement.write_indices):
            self.chunks.refresh(index)  # staging writes without one
            missing.update(self.chunks.chunk_ids(tenant, index, visible))
        return sorted(missing)

    def _commit(self, tenant: str, checked: Body, space: str, field: str) -> bool:
        """The swap: one conditional write, only while the manifest shows what was checked."""
        old = self.layout.placement(tenant, checked)

        def switch(current: Stored | None) -> Body | None:
            if current is None:
                return None
            manifest = current.source
            now = self.layout.placement(tenant, manifest)
            if (
                manifest["active"] != checked["active"]
                or (now.index, now.moving_to) != (old.index, old.moving_to)
                or (manifest["active"] and (manifest.get("staging") or {}).get("field") != field)
            ):
                return None  # changed since the check: check again
            left = vector_field(manifest)
            retired = [f for f in manifest.get("retired_fields") or [] if f["field"] != left]
            return {
                **manifest,
                "space": space,
                "vector_field": field,
                "staging": None,
                "retired_fields": [*retired, {"field": left, "at": time.time()}],
            }

        return self.docs.occ(self.index, tenant, switch) is not None
