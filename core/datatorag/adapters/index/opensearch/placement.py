"""Where a tenant's chunks live: a shared pool index or its own (silo), and the move between.

Layout. Small tenants share pool indices (``<prefix>pool-<n>``, a tenant in pool
``crc32(tenant) % pool_indices``): a thousand tenants of a few hundred documents need a few
shards, not a thousand. A tenant whose visible documents reach ``silo_min_documents`` moves to
its own index (``<prefix>chunks-<tenant>``), where its BM25 statistics are its own and its size
no longer weighs on the pool. With ``pooled=False`` every tenant starts in its own index.

Durability. The placement is part of the tenant's manifest (``manifest.py``), written with the
same conditional writes as the generations it sits beside, and read by the same real-time get
every search already makes: ``{"index": ..., "moving_to": ..., "vacated": [...]}``. A manifest
written before placements existed names none: that tenant lives in its silo.

Moving to a silo without downtime (``move_to_silo``), each step a conditional manifest write or
idempotent, so a move that stopped anywhere is finished by the next one:

1. create the silo index;
2. announce the move (``moving_to``): from the write that reads it on, a writer indexes a new
   generation into both indices before committing it; a writer that read the placement before
   finds the change at its commit and indexes the missing copy then (``Manifests.sync``);
3. copy every chunk of the tenant from the pool (``_reindex`` with the tenant's query);
4. switch: the placement names the silo, and the pool is listed as vacated with the time. Every
   generation the manifest names is complete in the silo: those committed before step 2 were
   copied in step 3, later ones were written to both. Searches read the pool until the manifest
   they read names the silo;
5. once the retirement grace has passed (searches that read the old placement are over), the
   next write or ``purge`` deletes the tenant's chunks from the pool by query.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from datatorag.adapters.index.opensearch.client import Documents, SearchIndexUnavailable, Stored
from datatorag.adapters.index.opensearch.mappings import Body, chunk_index_name, pool_index_name
from datatorag.adapters.index.opensearch.scope import ChunkRequests

DEFAULT_SILO_MIN_DOCUMENTS = 5000
DEFAULT_POOL_INDICES = 1


@dataclass(frozen=True)
class Vacated:
    """An index the tenant left at ``at`` (epoch seconds): its chunks there go after the grace."""

    index: str
    at: float


@dataclass(frozen=True)
class Placement:
    index: str  # where searches read the tenant's chunks
    moving_to: str | None = None  # the silo being filled: writers write both
    vacated: tuple[Vacated, ...] = field(default=())

    @property
    def write_indices(self) -> frozenset[str]:
        """Where a new generation must be before the manifest may name it."""
        return frozenset({self.index} | ({self.moving_to} if self.moving_to else set()))

    def body(self) -> Body:
        return {
            "index": self.index,
            "moving_to": self.moving_to,
            "vacated": [{"index": v.index, "at": v.at} for v in self.vacated],
        }

    @classmethod
    def parse(cls, body: Body) -> Placement:
        vacated = tuple(Vacated(v["index"], float(v["at"])) for v in body.get("vacated") or [])
        return cls(body["index"], body.get("moving_to"), vacated)


@dataclass(frozen=True)
class Layout:
    """Index names, and where a tenant starts and when it moves."""

    prefix: str
    pooled: bool = True
    pool_indices: int = DEFAULT_POOL_INDICES
    silo_min_documents: int = DEFAULT_SILO_MIN_DOCUMENTS

    def __post_init__(self) -> None:
        if self.pool_indices < 1 or self.silo_min_documents < 1:
            raise ValueError("pool_indices and silo_min_documents must be at least 1")

    def silo(self, tenant: str) -> str:
        return chunk_index_name(self.prefix, tenant)

    def pool(self, tenant: str) -> str:
        return pool_index_name(self.prefix, zlib.crc32(tenant.encode()) % self.pool_indices)

    def is_pool(self, index: str) -> bool:
        return index.startswith(f"{self.prefix}pool-")

    def placement(self, tenant: str, manifest: Body | None) -> Placement:
        """The tenant's placement as its manifest records it, or where a new tenant starts."""
        if manifest is None:
            return Placement(self.pool(tenant) if self.pooled else self.silo(tenant))
        recorded = manifest.get("placement")
        return Placement.parse(recorded) if recorded else Placement(self.silo(tenant))

    def wants_silo(self, placement: Placement, documents: int) -> bool:
        if placement.moving_to is not None:
            return True  # a move that stopped half way: finish it
        return self.is_pool(placement.index) and documents >= self.silo_min_documents


def move_to_silo(
    docs: Documents,
    chunks: ChunkRequests,
    layout: Layout,
    manifests_index: str,
    tenant: str,
    create_silo: Callable[[str], None],
) -> bool:
    """Move a pooled tenant into its own index (see the module docstring); False when it was
    not in a pool (nothing to do)."""
    silo = layout.silo(tenant)

    def current(stored: Stored | None) -> Placement:
        return layout.placement(tenant, stored.source if stored else None)

    def announce(stored: Stored | None) -> Body | None:
        placement = current(stored)
        if stored is None or placement.index == silo or placement.moving_to == silo:
            return None
        return _with(stored, replace(placement, moving_to=silo))

    start = docs.get(manifests_index, tenant)
    if start is None or current(start).index == silo:
        return False
    create_silo(silo)  # 1
    docs.occ(manifests_index, tenant, announce)  # 2
    placement = current(docs.get(manifests_index, tenant))
    if placement.moving_to != silo:
        return placement.index == silo  # another process finished the move meanwhile
    response = chunks.copy(tenant, placement.index, silo)  # 3
    if response.get("failures") or response.get("timed_out"):
        raise SearchIndexUnavailable(
            f"copying tenant {tenant!r} to {silo} failed: {response.get('failures')}"
        )

    def switch(stored: Stored | None) -> Body | None:
        placement = current(stored)
        if stored is None or placement.moving_to != silo:
            return None  # switched by another process
        left = Vacated(placement.index, time.time())
        return _with(stored, Placement(silo, None, (*placement.vacated, left)))

    docs.occ(manifests_index, tenant, switch)  # 4; step 5 is Manifests' (after the grace)
    return True


def _with(stored: Stored, placement: Placement) -> Body:
    return {**stored.source, "placement": placement.body()}
