"""Turns an announced raw document into a chunk set in the blob store and announces it."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from datatorag.domain.blob_keys import chunks_key
from datatorag.domain.errors import BlobNotFound, DocumentRejected, PermanentError
from datatorag.domain.messages import ChunksReady, DocumentFetched, Message, encode
from datatorag.domain.models import ChunkSet, DocumentStatus
from datatorag.domain.text import source_label
from datatorag.log import get_logger
from datatorag.ports import BlobStore, Queue, SearchIndex
from datatorag_processor.chunking import Chunker
from datatorag_processor.extract import extract

if TYPE_CHECKING:
    from datatorag_processor.extract.pdf_ocr import OcrOptions
from datatorag_processor.metadata import derive

log = get_logger(__name__)


class Processor:
    def __init__(
        self,
        blobs: BlobStore,
        index: SearchIndex,
        chunks_queue: Queue,
        chunker: Chunker,
        *,
        max_document_bytes: int,
        max_document_pages: int,
        ocr: OcrOptions | None = None,
    ) -> None:
        self.blobs = blobs
        self.index = index
        self.chunks_queue = chunks_queue
        self.chunker = chunker
        self.max_document_bytes = max_document_bytes
        self.max_document_pages = max_document_pages
        self.ocr = ocr

    def handle(self, message: Message) -> None:
        if not isinstance(message, DocumentFetched):
            raise PermanentError(f"the processor does not handle {message.kind} messages")
        if self._already_indexed(message):
            log.info("document.already_indexed", version=message.version)  # a redelivery
            return
        if not self.index.set_status(
            message.tenant, message.doc_id, DocumentStatus.PROCESSING, version=message.version
        ):
            log.info("document.stale", version=message.version)  # a newer version was announced
            return
        try:
            data = self.blobs.get(message.blob_key)
        except BlobNotFound as err:
            raise PermanentError(f"the raw file is gone from the blob store ({err})") from err
        doc = extract(
            data,
            message.filename,
            max_bytes=self.max_document_bytes,
            max_pages=self.max_document_pages,
            ocr=self.ocr,
        )
        title = (  # a title the uploader gave wins over the one the document states
            str(message.metadata.get("title") or "")
            or doc.title
            or PurePosixPath(message.filename).stem.replace("-", " ").capitalize()
        )
        label = source_label(str(message.metadata.get("path") or message.filename))
        chunks = self.chunker.chunk(message.doc_id, message.version, title, doc, label)
        if not chunks:
            raise DocumentRejected("no text found in the document")
        key = chunks_key(message.tenant, message.doc_id, message.version)
        chunk_set = ChunkSet(
            title=title,
            source_label=label,
            page_count=doc.page_count,
            metadata=derive(doc, title),
            chunks=chunks,
        )
        self.blobs.put(key, chunk_set.model_dump_json().encode())
        self.chunks_queue.send(
            encode(
                ChunksReady(
                    tenant=message.tenant,
                    doc_id=message.doc_id,
                    version=message.version,
                    chunks_key=key,
                    chunk_count=len(chunks),
                    page_count=doc.page_count,
                )
            )
        )
        log.info(
            "document.chunked",
            chunks=len(chunks),
            pages=doc.page_count,
            ocr_pages=len(doc.ocr_pages),
        )

    def record_failure(self, message: Message, reason: str) -> None:
        version = getattr(message, "version", None)
        if self._already_indexed(message):  # a late redelivery must not fail what is searchable
            log.info("document.already_indexed", version=version)
            return
        self.index.set_status(
            message.tenant, message.doc_id, DocumentStatus.FAILED, version=version, reason=reason
        )

    def _already_indexed(self, message: Message) -> bool:
        doc = self.index.get_document(message.tenant, message.doc_id)
        version = getattr(message, "version", None)
        return doc is not None and doc.version == version and doc.status == DocumentStatus.INDEXED
