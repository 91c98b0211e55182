"""Processing a failed document again, from the version already stored (no source access)."""

from __future__ import annotations

from datatorag.domain.blob_keys import raw_prefix
from datatorag.domain.models import DocumentRecord, DocumentStatus
from datatorag.ports import BlobStore, Queue, SearchIndex
from datatorag.usecases.announce import announce_document


def retry_failed(
    blobs: BlobStore, index: SearchIndex, documents_queue: Queue, doc: DocumentRecord
) -> str | None:
    """Announce ``doc``'s stored version again; None when done, else why it cannot be retried."""
    if doc.status != DocumentStatus.FAILED:
        return "it is not failed"
    stored = list(blobs.list(f"{raw_prefix(doc.tenant, doc.doc_id)}{doc.version}"))
    if not stored:
        return "its file was never read: ingest its source again"
    announce_document(
        blobs,
        index,
        documents_queue,
        tenant=doc.tenant,
        source_id=doc.source_id,
        source_uri=doc.source_uri,
        path=str(doc.metadata.get("path") or doc.source_uri.rsplit("/", 1)[-1]),
        data=blobs.get(stored[0]),
        metadata={k: v for k, v in doc.metadata.items() if k != "path"},
        known=None,  # announce it even though the bytes are the same
        title=doc.title,
    )
    return None
