"""Chunk indices: created by their first write, and the vector fields each maps.

A chunk index is created with ``embedding`` sized for the first vectors written to it (or the
adapter's ``dimension``); a tenant re-embedded into another space has that space's field
(``mappings.space_field``), added to the live index with ``put_mapping`` (adding a field is
allowed on an index in use: https://docs.opensearch.org/latest/api-reference/index-apis/put-mapping/).
What exists is remembered per process; asking again is harmless (both requests are idempotent).
"""

from __future__ import annotations

import threading

from opensearchpy import OpenSearch

from datatorag.adapters.index.opensearch.client import Documents
from datatorag.adapters.index.opensearch.mappings import (
    VECTOR_FIELD,
    Body,
    chunk_index_body,
    vector_field_body,
)


class ChunkIndices:
    def __init__(
        self, client: OpenSearch, docs: Documents, *, dimension: int | None, replicas: int
    ) -> None:
        """``dimension`` fixes the size of ``embedding`` in new chunk indices (else the first
        vectors')."""
        self.client = client
        self.docs = docs
        self.dimension = dimension
        self.replicas = replicas
        self._dimensions: dict[str, int] = {}  # chunk index -> size of its ``embedding``
        self._fields: set[tuple[str, str]] = set()  # (index, field) known to be mapped
        self._lock = threading.Lock()

    def ensure(self, name: str, dimension: int | None) -> None:
        """Create a chunk index if needed; refuse ``embedding`` vectors of another size."""
        expected = self.dimension or dimension
        if expected is None:
            raise ValueError(f"no vector dimension known for a new chunk index {name}")
        if dimension is not None and dimension != expected:
            raise ValueError(
                f"chunk vectors have {dimension} dimensions; the index holds {expected}"
            )
        if name not in self._dimensions:
            self.docs.ensure_index(name, chunk_index_body(expected, replicas=self.replicas))
        known = self.dimension_of(name)
        if known is not None and dimension is not None and known != dimension:
            raise ValueError(f"chunk vectors have {dimension} dimensions; the index holds {known}")

    def ensure_field(self, index: str, field: str, dimension: int) -> None:
        """Make sure ``index`` exists and maps ``field`` for vectors of ``dimension``."""
        if field == VECTOR_FIELD:
            self.ensure(index, dimension)
            return
        if (index, field) in self._fields:
            return
        self.ensure(index, self.dimension_of(index) or dimension)
        body: Body = {"properties": {field: vector_field_body(dimension)}}
        self.client.indices.put_mapping(index=index, body=body)
        with self._lock:
            self._fields.add((index, field))

    def dimension_of(self, name: str) -> int | None:
        """The size of a chunk index's ``embedding`` vectors; None while it does not exist."""
        if name not in self._dimensions:
            mapping = self.client.indices.get_mapping(index=name, ignore=404)
            if name not in mapping:
                return None
            properties = mapping[name]["mappings"]["properties"]
            with self._lock:
                self._dimensions[name] = int(properties[VECTOR_FIELD]["dimension"])
        return self._dimensions[name]


def reembedded_fields(manifest: Body | None) -> list[tuple[str, str]]:
    """(space, field) of a tenant's vectors outside ``embedding``: searched, and being staged."""
    source = manifest or {}
    staging = source.get("staging") or {}
    pairs = [
        (source.get("space"), source.get("vector_field")),
        (staging.get("space"), staging.get("field")),
    ]
    return [(space, field) for space, field in pairs if space and field]
