"""Announcing a document: its bytes to the blob store, its record to the index, a
``DocumentFetched`` to the processor, unless the same bytes are already there.

Shared by source syncs (the connector) and API uploads (the query API): both are sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any, Literal

from datatorag.domain.blob_keys import raw_key
from datatorag.domain.media import UNKNOWN, extension_type, suffix_of
from datatorag.domain.messages import DocumentFetched, encode
from datatorag.domain.models import (
    DocumentRecord,
    DocumentStatus,
    content_hash,
    document_id,
    utcnow,
)
from datatorag.ports import BlobStore, Queue, SearchIndex
from datatorag.usecases.worker import is_transient_failure

# An announced document nobody picked up for this long is announced again; so is one that
# failed because a transient fault outlasted the worker's retries, once this long has passed.
REANNOUNCE_AFTER = timedelta(minutes=10)


Outcome = Literal["added", "changed", "unchanged"]


@dataclass(frozen=True)
class Announcement:
    doc_id: str
    outcome: Outcome
    record: DocumentRecord  # the record as it stands now (``known`` when unchanged)


def announce_document(
    blobs: BlobStore,
    index: SearchIndex,
    documents_queue: Queue,
    *,
    tenant: str,
    source_id: str,
    source_uri: str,
    path: str,
    data: bytes,
    metadata: Mapping[str, Any],
    known: DocumentRecord | None,
    title: str | None = None,
    announced: set[tuple[str, str, str]] | None = None,
) -> Announcement:
    """Store one file's bytes, upsert its record and announce it, unless it is unchanged.

    Shared by source syncs and API uploads. ``path`` names the file inside its source (its
    suffix picks the media type); ``title`` defaults to the known title, else the file's stem.
    ``announced``: the versions the caller announced before; it gains this one.
    """
    version = content_hash(data)
    same = known is not None and known.version == version and _says_the_same(known, metadata)
    if known and same and not _needs_announcing(known, announced):
        return Announcement(known.doc_id, "unchanged", known)
    doc_id = document_id(source_uri)
    blobs.put(raw_key(tenant, doc_id, version, suffix_of(path)), data)
    record = DocumentRecord(
        tenant=tenant,
        doc_id=doc_id,
        source_id=source_id,
        source_uri=source_uri,
        title=title or (known.title if known else PurePosixPath(path).stem),
        media_type=extension_type(path) or UNKNOWN,
        version=version,
        size_bytes=len(data),
        metadata={**metadata, "path": path},
    )
    index.upsert_document(record)
    documents_queue.send(encode(fetched_message(record)))
    if announced is not None:
        announced.add((tenant, doc_id, version))
    outcome: Outcome = "changed" if known and known.status != DocumentStatus.DELETED else "added"
    return Announcement(doc_id, outcome, record)


def fetched_message(record: DocumentRecord) -> DocumentFetched:
    """The processor's message for ``record``'s version, whose file announce_document stored."""
    path = str(record.metadata["path"])
    return DocumentFetched(
        tenant=record.tenant,
        doc_id=record.doc_id,
        version=record.version,
        blob_key=raw_key(record.tenant, record.doc_id, record.version, suffix_of(path)),
        source_uri=record.source_uri,
        filename=PurePosixPath(path).name,
        media_type=record.media_type,
        metadata=record.metadata,
    )


def reannounce_stalled(
    index: SearchIndex,
    documents_queue: Queue,
    tenant: str,
    *,
    source_id: str,
    now: datetime | None = None,
) -> list[str]:
    """Announce again the tenant's documents of ``source_id`` still ``fetched`` REANNOUNCE_AFTER
    after they were announced; returns their ids.

    A process that dies between storing a document's record and sending its message leaves it
    ``fetched`` with no message: a source's next sync announces it again (``_needs_announcing``),
    an upload has no next sync, so the query API runs this. The file is already stored; the
    message is rebuilt from the record. A duplicate costs nothing (a version already indexed is
    skipped). The record is left as it is: rewriting its status could undo the processor's
    ``processing`` had it just taken the message.
    """
    cutoff = (now or utcnow()) - REANNOUNCE_AFTER
    stalled: list[DocumentRecord] = []
    page, offset = 100, 0
    while True:
        found = index.list_documents(
            tenant, source_id=source_id, status=DocumentStatus.FETCHED, limit=page, offset=offset
        )
        stalled += [doc for doc in found if doc.updated_at < cutoff and "path" in doc.metadata]
        if len(found) < page:
            break
        offset += page
    for doc in stalled:
        documents_queue.send(encode(fetched_message(doc)))
    return [doc.doc_id for doc in stalled]


def _says_the_same(doc: DocumentRecord, metadata: Mapping[str, Any]) -> bool:
    """True if the record still holds every key the source gives now, with the same value.

    A file whose category or audience changed in its source is announced again (same bytes,
    new applicability). The record also holds what the processor derived, so only the keys the
    source gives are compared.
    """
    return all(doc.metadata.get(key) == value for key, value in metadata.items())


def _needs_announcing(doc: DocumentRecord, announced: set[tuple[str, str, str]] | None) -> bool:
    if doc.status == DocumentStatus.DELETED:
        return True  # the file came back
    if (
        announced is not None
        and doc.status == DocumentStatus.FETCHED
        and (doc.tenant, doc.doc_id, doc.version) not in announced
    ):
        # Announced by another process, maybe one killed between the record and the message
        # (the fault tests found it): once more now. A duplicate costs nothing (a version
        # already indexed is skipped), a lost message cost the document REANNOUNCE_AFTER.
        return True
    if utcnow() - doc.updated_at <= REANNOUNCE_AFTER:
        return False
    # Not a permanent reason (encrypted, corrupt, too large), nor a message that crashed the
    # worker every time ("gave up after N attempts" with no error): those would fail again.
    failed_by_outage = doc.status == DocumentStatus.FAILED and is_transient_failure(doc.reason)
    return doc.status == DocumentStatus.FETCHED or failed_by_outage
