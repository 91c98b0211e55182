"""Wires the processor from settings."""

from __future__ import annotations

from datatorag import wiring
from datatorag.domain.messages import CHUNKS_QUEUE, DOCUMENTS_QUEUE
from datatorag.settings import Settings
from datatorag.usecases.worker import Worker
from datatorag_processor.chunking import Chunker, TokenCounter
from datatorag_processor.extract.pdf_ocr import OcrOptions
from datatorag_processor.handler import Processor


def build_chunker(settings: Settings) -> Chunker:
    return Chunker(
        TokenCounter(settings.tokenizer_file),
        max_tokens=settings.effective_chunk_tokens,
        overlap_tokens=settings.effective_chunk_overlap,
    )


def build_ocr(settings: Settings) -> OcrOptions | None:
    ocr = wiring.ocr(settings)
    if ocr is None:
        return None
    return OcrOptions(
        ocr,
        dpi=settings.ocr_dpi,
        max_pages=settings.ocr_max_pages,
        timeout_s=settings.ocr_timeout_s,
    )


def bootstrap(settings: Settings) -> Worker:
    processor = Processor(
        wiring.blob_store(settings),
        wiring.search_index(settings),
        wiring.queue(settings, CHUNKS_QUEUE),
        build_chunker(settings),
        max_document_bytes=settings.max_document_bytes,
        max_document_pages=settings.max_document_pages,
        ocr=build_ocr(settings),
    )
    return Worker(
        wiring.queue(settings, DOCUMENTS_QUEUE),
        processor.handle,
        processor.record_failure,
        max_receives=settings.max_receives,
        visibility_timeout_s=settings.visibility_timeout_s,
        poll_wait_s=settings.poll_wait_s,
    )
