"""Ocr with Amazon Textract (or anything speaking its API).

A few pages go one by one through ``DetectDocumentText`` (the page image in the request); a
document with ``async_min_pages`` scanned pages or more is uploaded to S3 as one multi-page TIFF
and read by ``StartDocumentTextDetection``, polled with ``GetDocumentTextDetection`` until its
``JobStatus`` is final, then paged through with ``NextToken``. Lines come from the LINE blocks,
ordered as their PAGE block lists them except that columns are read one after the other
(``domain.reading_order``), with Textract's ``Geometry.BoundingBox`` as the box.
API reference: https://docs.aws.amazon.com/textract/latest/dg/API_Reference.html
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from datatorag.domain.errors import OcrTimeout, PermanentError, RetryableError
from datatorag.domain.reading_order import Word, in_reading_order
from datatorag.ports import OcrLine
from datatorag.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Errors that trying again later can cure (Textract's documented throttling and server faults).
_RETRYABLE = {
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "InternalServerError",
}
_TIMEOUT = "reading the scanned pages ran out of its time budget"


class TextractOcr:
    def __init__(
        self,
        textract: Any,
        s3: S3Client,
        bucket: str,
        *,
        async_min_pages: int = 10,
        poll_s: float = 2.0,
    ) -> None:
        self.textract = textract
        self.s3 = s3
        self.bucket = bucket
        self.async_min_pages = async_min_pages
        self.poll_s = poll_s

    @classmethod
    def from_settings(cls, settings: Settings) -> TextractOcr:
        config = Config(
            connect_timeout=10,
            read_timeout=60,
            retries={"total_max_attempts": 4, "mode": "standard"},
        )
        s3_config = config.merge(Config(s3={"addressing_style": "path"}))
        region, endpoint = settings.aws_region, settings.aws_endpoint_url
        return cls(
            boto3.client("textract", config=config, region_name=region, endpoint_url=endpoint),
            boto3.client("s3", config=s3_config, region_name=region, endpoint_url=endpoint),
            settings.s3_bucket,
            async_min_pages=settings.textract_async_min_pages,
        )

    def recognise(self, images: Sequence[bytes], *, timeout_s: float) -> list[list[OcrLine]]:
        deadline = time.monotonic() + timeout_s
        try:
            if len(images) >= self.async_min_pages:
                return self._job(images, deadline)
            return [self._detect(image, deadline) for image in images]
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            message = err.response.get("Error", {}).get("Message", "")
            if code in _RETRYABLE:
                raise RetryableError(f"Textract is busy ({code}): {message}") from err
            raise PermanentError(f"Textract refused the scanned pages ({code}): {message}") from err
        except BotoCoreError as err:  # connection refused, read timeout
            raise RetryableError(f"Textract cannot be reached: {err}") from err

    def _detect(self, image: bytes, deadline: float) -> list[OcrLine]:
        if time.monotonic() > deadline:
            raise OcrTimeout(_TIMEOUT)
        answer = self.textract.detect_document_text(Document={"Bytes": image})
        return _lines(answer["Blocks"]).get(1, [])

    def _job(self, images: Sequence[bytes], deadline: float) -> list[list[OcrLine]]:
        key = f"system/ocr/{uuid.uuid4().hex}.tiff"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=_tiff(images))
        try:
            job = self.textract.start_document_text_detection(
                DocumentLocation={"S3Object": {"Bucket": self.bucket, "Name": key}}
            )
            blocks = list(self._results(job["JobId"], deadline))
        finally:
            self.s3.delete_object(Bucket=self.bucket, Key=key)
        found = _lines(blocks)
        return [found.get(number, []) for number in range(1, len(images) + 1)]

    def _results(self, job_id: str, deadline: float) -> Iterator[dict[str, Any]]:
        """Every block of a finished job, through all its result pages."""
        request: dict[str, Any] = {"JobId": job_id, "MaxResults": 1000}
        while True:
            answer = self.textract.get_document_text_detection(**request)
            status = answer["JobStatus"]
            if status == "IN_PROGRESS":
                if time.monotonic() + self.poll_s > deadline:
                    raise OcrTimeout(_TIMEOUT)
                time.sleep(self.poll_s)
                continue
            if status == "FAILED":
                raise PermanentError(
                    f"Textract could not read the scanned pages: {answer.get('StatusMessage')}"
                )
            yield from answer.get("Blocks", [])  # PARTIAL_SUCCESS: the pages it could read
            if not answer.get("NextToken"):
                return
            request["NextToken"] = answer["NextToken"]


def _tiff(images: Sequence[bytes]) -> bytes:
    """The page images as one multi-page TIFF (Textract's asynchronous input)."""
    from PIL import Image

    pages = [Image.open(io.BytesIO(image)) for image in images]
    out = io.BytesIO()
    pages[0].save(
        out, format="TIFF", save_all=True, append_images=pages[1:], compression="tiff_lzw"
    )
    return out.getvalue()


def _lines(blocks: Sequence[Mapping[str, Any]]) -> dict[int, list[OcrLine]]:
    """LINE blocks by page number (1 when a response holds one page), in their PAGE's order."""
    by_id = {block["Id"]: block for block in blocks if "Id" in block}
    pages: dict[int, list[OcrLine]] = {}
    for block in blocks:
        if block["BlockType"] != "PAGE":
            continue
        children = [
            child
            for relation in block.get("Relationships", [])
            if relation["Type"] == "CHILD"
            for child in relation["Ids"]
        ]
        lines = [_word(by_id[i]) for i in children if by_id.get(i, {}).get("BlockType") == "LINE"]
        pages[int(block.get("Page", 1))] = [_line(group) for group in in_reading_order(lines)]
    return pages


def _word(block: Mapping[str, Any]) -> Word:
    """A LINE block as one unit for the column order (Textract does not run lines across a
    gutter, but it lists the lines of two columns top to bottom, interleaved)."""
    box = block["Geometry"]["BoundingBox"]
    left, top = float(box["Left"]), float(box["Top"])
    return Word(
        text=block.get("Text", ""),
        left=left,
        top=top,
        right=left + float(box["Width"]),
        bottom=top + float(box["Height"]),
        confidence=float(block.get("Confidence", 0.0)),
        line=block["Id"],
    )


def _line(group: list[Word]) -> OcrLine:
    [line] = group  # a LINE block is never cut
    return OcrLine(
        text=line.text,
        left=line.left,
        top=line.top,
        width=line.right - line.left,
        height=line.bottom - line.top,
        confidence=line.confidence,
    )
