"""Documents uploaded over HTTP and deleted on request, announced as a synced file is.

An upload is one more source (``source_id`` ``"upload"``): its bytes go to the blob store, its
record to the index and a ``DocumentFetched`` to the processor, exactly as a synced file. The
client's filename is never a path: only its last component survives, without control
characters, so ``upload://<tenant>/<name>`` cannot point anywhere else.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from datatorag.domain.models import METADATA_KEY, DocumentRecord, DocumentStatus, document_id
from datatorag.domain.uris import upload_uri
from datatorag.log import get_logger
from datatorag.ports import BlobStore, Queue, SearchIndex
from datatorag.usecases.announce import (
    REANNOUNCE_AFTER,
    Announcement,
    announce_document,
    reannounce_stalled,
)
from datatorag.usecases.removal import remove_document
from datatorag.usecases.retry import retry_failed
from datatorag_query_api.problems import Problem

log = get_logger(__name__)

UPLOAD_SOURCE_ID = "upload"
FIELD_BYTES = 64 * 1024  # each form field beside the file (title, tags, metadata)
FORM_OVERHEAD = 4 * FIELD_BYTES  # the fields plus part headers and boundaries
MAX_NAME_BYTES = 200
MAX_SUFFIX_CHARS = 16
FIELDS = frozenset({"file", "title", "tags", "metadata"})
MAX_TITLE_CHARS = 300
MAX_TAGS = 50
MAX_TAG_CHARS = 64
# The tags rule as one regular expression, so that the OpenAPI document can state it exactly.
TAGS = re.compile(rf"[^,]{{0,{MAX_TAG_CHARS}}}(,[^,]{{0,{MAX_TAG_CHARS}}}){{0,{MAX_TAGS - 1}}}")
READ_CHUNK = 1024 * 1024
_SEPARATORS = re.compile(r"[/\\]")


@dataclass(frozen=True)
class UploadForm:
    filename: str  # sanitised
    data: bytes
    title: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def safe_filename(raw: str | None) -> str:
    """The last path component of a client's filename, printable, at most 200 UTF-8 bytes."""
    name = _SEPARATORS.split(unicodedata.normalize("NFC", raw or ""))[-1]
    name = "".join(c for c in name if not unicodedata.category(c).startswith("C"))
    name = " ".join(name.split()).strip(" .")  # no "..", no hidden files, no trailing dots
    path = PurePosixPath(name or "upload")
    stem, suffix = path.stem, path.suffix
    if len(suffix) > MAX_SUFFIX_CHARS:
        stem, suffix = path.name, ""
    while len((stem + suffix).encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return (stem.rstrip(" .") or "upload") + suffix


def too_large(max_bytes: int) -> Problem:
    return Problem(413, "Content too large", f"documents may have at most {max_bytes} bytes")


async def read_upload(request: Request, max_bytes: int) -> UploadForm:
    """Parse a multipart upload, refusing it (413) as soon as it grows past ``max_bytes``."""
    content_type, _ = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise Problem(415, "Unsupported media type", "send the document as multipart/form-data")
    limit = max_bytes + FORM_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(max_bytes)  # refused before a byte of the body is read
    async with aclosing(_limited(request.stream(), limit, max_bytes)) as stream:
        parser = MultiPartParser(
            request.headers, stream, max_files=1, max_fields=8, max_part_size=FIELD_BYTES
        )
        try:
            form = await parser.parse()
        except MultiPartException as err:
            raise Problem(400, "Bad request", f"unreadable multipart body: {err.message}") from err
        except ClientDisconnect as err:
            raise Problem(400, "Bad request", "the client disconnected during the upload") from err
    try:
        return await _form(form, max_bytes)
    finally:
        await form.close()


async def _limited(
    chunks: AsyncIterator[bytes], limit: int, max_bytes: int
) -> AsyncGenerator[bytes, None]:
    """The body as it arrives; stops reading once it exceeds ``limit`` (chunked uploads too)."""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise too_large(max_bytes)
        yield chunk


async def _form(form: FormData, max_bytes: int) -> UploadForm:
    unknown = sorted(set(form.keys()) - FIELDS)
    if unknown:  # a misspelt "tittle" would otherwise be dropped without a word
        raise Problem(
            422,
            "Invalid upload",
            f"unknown form field {unknown[0][:70]!r}; send {', '.join(sorted(FIELDS))}",
        )
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise Problem(422, "Invalid upload", "send the document in a file field named 'file'")
    data = bytearray()
    while chunk := await upload.read(READ_CHUNK):
        data += chunk
        if len(data) > max_bytes:
            raise too_large(max_bytes)
    if not data:
        raise Problem(422, "Invalid upload", "the uploaded file is empty")
    return UploadForm(
        filename=safe_filename(upload.filename),
        data=bytes(data),
        title=_title(form.get("title")),
        tags=_tags(form.get("tags")),
        metadata=_metadata(form.get("metadata")),
    )


def _text_field(value: str | UploadFile | None, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Problem(422, "Invalid upload", f"'{name}' must be a text field, not a file")
    return value


def _title(value: str | UploadFile | None) -> str | None:
    text = _text_field(value, "title")
    if len(text) > MAX_TITLE_CHARS:  # as sent, as the OpenAPI document says
        raise Problem(422, "Invalid upload", f"'title' has more than {MAX_TITLE_CHARS} characters")
    title = " ".join("".join(c for c in text if unicodedata.category(c) != "Cc").split())
    return title or None


def _tags(value: str | UploadFile | None) -> list[str]:
    text = _text_field(value, "tags")
    if not TAGS.fullmatch(text):
        raise Problem(
            422,
            "Invalid upload",
            f"'tags' takes at most {MAX_TAGS} comma-separated tags of {MAX_TAG_CHARS} characters",
        )
    tags = list(dict.fromkeys(t.strip() for t in text.split(",")))
    return [t for t in tags if t]


def _metadata(value: str | UploadFile | None) -> dict[str, Any]:
    """A flat JSON object of filterable keys: scalars or lists of scalars, as filters match."""
    text = _text_field(value, "metadata")
    if not text.strip():
        return {}
    try:
        metadata = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise _bad_metadata(f"is not valid JSON: {err.msg}") from err
    except (ValueError, RecursionError) as err:  # NaN/Infinity, huge integers, deep nesting
        raise _bad_metadata(
            "holds NaN, Infinity, an integer of thousands of digits or deep nesting"
        ) from err
    if not isinstance(metadata, dict):
        raise _bad_metadata("must be a JSON object")
    for key, item in metadata.items():
        if not METADATA_KEY.match(key):
            raise _bad_metadata(
                f"key {key[:70]!r} is not a filterable name (letters, digits, '_' or '-', "
                "at most 64)"
            )
        items = item if isinstance(item, list) else [item]
        if not all(isinstance(i, str | int | float | bool) or i is None for i in items):
            raise _bad_metadata(
                f"{key!r} must be a string, number, boolean, null or a list of them"
            )
    return metadata


def _no_constant(name: str) -> None:
    raise ValueError(name)


def _bad_metadata(detail: str) -> Problem:
    return Problem(422, "Invalid upload", f"'metadata' {detail}")


class Uploads:
    """Stores uploaded documents into a tenant and deletes documents on request."""

    def __init__(self, blobs: BlobStore, index: SearchIndex, documents_queue: Queue) -> None:
        self.blobs = blobs
        self.index = index
        self.documents_queue = documents_queue

    def store(self, tenant: str, form: UploadForm) -> Announcement:
        """A new document, a new version of the same name, or nothing when the bytes match."""
        uri = upload_uri(tenant, form.filename)
        metadata = dict(form.metadata)
        if form.tags:
            metadata["tags"] = form.tags
        if form.title:
            metadata["title"] = form.title
        return announce_document(
            self.blobs,
            self.index,
            self.documents_queue,
            tenant=tenant,
            source_id=UPLOAD_SOURCE_ID,
            source_uri=uri,
            path=form.filename,
            data=form.data,
            metadata=metadata,
            known=self.index.get_document(tenant, document_id(uri)),
            title=form.title,
        )

    def remove(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        """Delete the document now (out of search, status deleted, files gone); None when the
        tenant has no such document."""
        doc = self.index.get_document(tenant, doc_id)
        if doc is None or doc.status == DocumentStatus.DELETED:
            return doc
        remove_document(self.blobs, self.index, tenant, doc_id)
        return self.index.get_document(tenant, doc_id)

    def reannounce_stalled(self, tenants: Iterable[str]) -> int:
        """Announce again the uploads left ``fetched`` without a message (``announce``'s
        ``reannounce_stalled``); returns how many."""
        count = 0
        for tenant in sorted(tenants):
            doc_ids = reannounce_stalled(
                self.index, self.documents_queue, tenant, source_id=UPLOAD_SOURCE_ID
            )
            if doc_ids:
                log.warning("upload.reannounced", tenant=tenant, doc_ids=doc_ids)
            count += len(doc_ids)
        return count

    def retry(self, tenant: str, doc_id: str) -> DocumentRecord | None:
        """Announce a failed document's stored version again; its record then reads fetched.
        Returns the record as it stands after, or None when the tenant has no such document."""
        doc = self.index.get_document(tenant, doc_id)
        if doc is None:
            return None
        retry_failed(self.blobs, self.index, self.documents_queue, doc)
        return self.index.get_document(tenant, doc_id)


async def resend_lost_announcements(
    uploads: Uploads,
    tenants: Callable[[], Iterable[str]],
    every_s: float = REANNOUNCE_AFTER.total_seconds(),
) -> None:
    """Every API process, at start and then every ``every_s``: uploads whose process died
    between storing them and announcing them are announced again (duplicates cost nothing)."""
    while True:
        try:
            await run_in_threadpool(lambda: uploads.reannounce_stalled(tenants()))
        except Exception as err:  # noqa: BLE001 - a store or queue outage: the next sweep retries
            log.error("upload.reannounce_failed", error=f"{type(err).__name__}: {err}")
        await asyncio.sleep(every_s)
