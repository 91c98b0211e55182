"""Brings one source's files into the blob store and announces what changed.

Order per file: raw bytes to the blob store, then the document record, then the announcement.
A crash between the last two leaves a record in ``fetched`` that the next sync announces again
(handlers are idempotent, so a duplicate announcement costs work, never correctness).

A document is removed only when the folder it was in was listed and it was not there: one
under a folder that could not be listed is kept as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Any, Literal

from datatorag.domain.errors import DocumentRejected, SourceError
from datatorag.domain.messages import DocumentFetched, DocumentRemoved, encode
from datatorag.domain.models import (
    DocumentRecord,
    DocumentStatus,
    content_hash,
    document_id,
    utcnow,
)
from datatorag.log import get_logger
from datatorag.ports import BlobStore, Queue, SearchIndex
from datatorag.usecases.worker import is_transient_failure
from datatorag_connector.sources import Listing, Source, SourceFile

log = get_logger(__name__)

MEDIA_TYPES = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
}
# An announced document nobody picked up for this long is announced again; so is one that
# failed because a transient fault outlasted the worker's retries, once this long has passed.
REANNOUNCE_AFTER = timedelta(minutes=10)


@dataclass
class SyncReport:
    source_id: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # URI of a file that could not be read, or of a folder that could not be listed -> reason
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def doc_ids(self) -> list[str]:
        return [document_id(uri) for uri in self.added + self.changed + self.unchanged]


Progress = Callable[[str], None]


class Syncer:
    def __init__(
        self, blobs: BlobStore, index: SearchIndex, documents_queue: Queue, chunks_queue: Queue
    ) -> None:
        self.blobs = blobs
        self.index = index
        self.documents_queue = documents_queue
        self.chunks_queue = chunks_queue
        # Versions this syncer announced (tenant, doc_id, version). A record still `fetched`
        # that it did not announce may have lost its message: see _needs_announcing.
        self.announced: set[tuple[str, str, str]] = set()

    def sync(
        self,
        source: Source,
        tenant: str,
        metadata: dict[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> SyncReport:
        report = SyncReport(source.source_id)
        known = {d.source_uri: d for d in self._documents(tenant, source.source_id)}
        listing = source.listing()
        report.unreadable.update(listing.unlisted)
        for file in listing.files:
            uri = source.uri_of(file)
            try:
                self._sync_file(source, file, uri, tenant, known.get(uri), metadata or {}, report)
            except DocumentRejected as err:  # e.g. over the size limit: fail that one document
                self._record_rejected(source, file, uri, tenant, str(err))
                report.added.append(uri)
            except SourceError as err:
                report.unreadable[uri] = str(err)
                log.warning("source.file_unreadable", source_uri=uri, reason=str(err))
            if progress:
                progress(uri)
        self._remove_gone(tenant, known, listing, source, report)
        log.info(
            "source.synced",
            source_id=source.source_id,
            added=len(report.added),
            changed=len(report.changed),
            removed=len(report.removed),
            unreadable=len(report.unreadable),
        )
        return report

    def _remove_gone(
        self,
        tenant: str,
        known: dict[str, DocumentRecord],
        listing: Listing,
        source: Source,
        report: SyncReport,
    ) -> None:
        """Remove the known documents the listing shows are gone from the source."""
        listed = {source.uri_of(f) for f in listing.files}
        for uri, doc in known.items():
            if uri in listed or doc.status == DocumentStatus.DELETED or listing.may_hold(uri):
                continue
            self.chunks_queue.send(encode(DocumentRemoved(tenant=tenant, doc_id=doc.doc_id)))
            report.removed.append(uri)

    def _documents(self, tenant: str, source_id: str) -> Iterator[DocumentRecord]:
        offset, page = 0, 500
        while batch := self.index.list_documents(
            tenant, source_id=source_id, limit=page, offset=offset
        ):
            yield from batch
            offset += page

    def _sync_file(
        self,
        source: Source,
        file: SourceFile,
        uri: str,
        tenant: str,
        known: DocumentRecord | None,
        metadata: dict[str, Any],
        report: SyncReport,
    ) -> None:
        announced = announce_document(
            self.blobs,
            self.index,
            self.documents_queue,
            tenant=tenant,
            source_id=source.source_id,
            source_uri=uri,
            path=file.path,
            data=source.read(file),
            metadata=metadata,
            known=known,
            announced=self.announced,
        )
        lists = {"added": report.added, "changed": report.changed, "unchanged": report.unchanged}
        lists[announced.outcome].append(uri)

    def _record_rejected(
        self, source: Source, file: SourceFile, uri: str, tenant: str, reason: str
    ) -> None:
        self.index.upsert_document(
            DocumentRecord(
                tenant=tenant,
                doc_id=document_id(uri),
                source_id=source.source_id,
                source_uri=uri,
                title=PurePosixPath(file.path).stem,
                version=f"unread-{file.size}",
                status=DocumentStatus.FAILED,
                reason=reason,
                size_bytes=file.size,
            )
        )


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
    metadata: dict[str, Any],
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
    if known and known.version == version and not _needs_announcing(known, announced):
        return Announcement(known.doc_id, "unchanged", known)
    doc_id = document_id(source_uri)
    name = PurePosixPath(path)
    suffix = name.suffix.lower()
    blob_key = f"tenants/{tenant}/raw/{doc_id}/{version}{suffix}"
    blobs.put(blob_key, data)
    record = DocumentRecord(
        tenant=tenant,
        doc_id=doc_id,
        source_id=source_id,
        source_uri=source_uri,
        title=title or (known.title if known else name.stem),
        media_type=MEDIA_TYPES.get(suffix, "application/octet-stream"),
        version=version,
        size_bytes=len(data),
        metadata={**metadata, "path": path},
    )
    index.upsert_document(record)
    documents_queue.send(
        encode(
            DocumentFetched(
                tenant=tenant,
                doc_id=doc_id,
                version=version,
                blob_key=blob_key,
                source_uri=source_uri,
                filename=name.name,
                media_type=record.media_type,
                metadata=record.metadata,
            )
        )
    )
    if announced is not None:
        announced.add((tenant, doc_id, version))
    outcome: Outcome = "changed" if known and known.status != DocumentStatus.DELETED else "added"
    return Announcement(doc_id, outcome, record)


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
