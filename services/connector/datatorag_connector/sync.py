"""Brings one source's files into the blob store and announces what changed.

Order per file: raw bytes to the blob store, then the document record, then the announcement.
A crash between the last two leaves a record in ``fetched`` that the next sync announces again
(handlers are idempotent, so a duplicate announcement costs work, never correctness).

A document is removed only when the folder it was in was listed and it was not there: one
under a folder that could not be listed is kept as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from datatorag.domain.errors import DocumentRejected, SourceError
from datatorag.domain.messages import DocumentRemoved, encode
from datatorag.domain.models import DocumentRecord, DocumentStatus, document_id
from datatorag.log import get_logger
from datatorag.ports import BlobStore, Queue, SearchIndex
from datatorag.usecases.announce import announce_document
from datatorag_connector.sources import Listing, Source, SourceFile

log = get_logger(__name__)


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

    def sync_file(
        self, source: Source, file: SourceFile, tenant: str, metadata: dict[str, Any] | None = None
    ) -> SyncReport:
        """Bring one file in now (an event said it changed), as a full sync would."""
        report, uri = SyncReport(source.source_id), source.uri_of(file)
        known = self.index.get_document(tenant, document_id(uri))
        try:
            self._sync_file(source, file, uri, tenant, known, metadata or {}, report)
        except DocumentRejected as err:
            self._record_rejected(source, file, uri, tenant, str(err))
            report.added.append(uri)
        return report

    def remove_file(self, source: Source, file: SourceFile, tenant: str) -> bool:
        """Take one file out now (an event said it was deleted); False if it was not known."""
        doc = self.index.get_document(tenant, document_id(source.uri_of(file)))
        if doc is None or doc.status == DocumentStatus.DELETED:
            return False
        self.chunks_queue.send(encode(DocumentRemoved(tenant=tenant, doc_id=doc.doc_id)))
        return True

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
        file_metadata = merge_metadata(metadata, file.metadata)
        title = file_metadata.get("title")
        announced = announce_document(
            self.blobs,
            self.index,
            self.documents_queue,
            tenant=tenant,
            source_id=source.source_id,
            source_uri=uri,
            path=file.path,
            data=source.read(file),
            metadata=file_metadata,
            known=known,
            title=str(title) if title else None,
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


def merge_metadata(registered: Mapping[str, Any], from_file: Mapping[str, Any]) -> dict[str, Any]:
    """The source's per-file metadata over what the source was registered with; tags add up."""
    merged = {**registered, **from_file}
    tags = {*registered.get("tags", ()), *from_file.get("tags", ())}
    if tags:
        merged["tags"] = sorted(tags)
    return merged
