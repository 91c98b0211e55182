"""Removing a document: out of the index first, then every file stored for it.

Shared by the embedder-client (removals the connector announces) and the query API (deletes it
does at once, so that an upload right after a delete is never undone by a queued removal).
"""

from __future__ import annotations

from datatorag.domain.blob_keys import document_prefixes
from datatorag.ports import BlobStore, SearchIndex


def remove_document(blobs: BlobStore, index: SearchIndex, tenant: str, doc_id: str) -> None:
    """Mark the document deleted (its chunks leave search), then delete its stored files.

    The files are listed before the index changes, so a new version stored after the removal is
    not among them. Idempotent: a redelivered removal finds nothing left to do.
    """
    stored = [key for prefix in document_prefixes(tenant, doc_id) for key in blobs.list(prefix)]
    index.delete_document(tenant, doc_id)
    for key in stored:
        blobs.delete(key)
