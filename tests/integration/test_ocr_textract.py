"""TextractOcr with the real boto3 client against the FAKE Textract (tests/fixtures/textract.py),
which answers in Textract's documented JSON and reads the images with Tesseract; the asynchronous
path goes through the moto S3 server."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datatorag.adapters.ocr.textract import TextractOcr
from datatorag.domain.errors import OcrTimeout, PermanentError, RetryableError
from datatorag_processor.extract import extract
from datatorag_processor.extract.pdf_ocr import OcrOptions
from tests.fixtures.corpus import SOURCE_FOR_BAD
from tests.fixtures.scans import scan_images, scan_pdf
from tests.fixtures.textract import FakeTextract

pytestmark = pytest.mark.integration

LIMITS = {"max_bytes": 50 * 1024 * 1024, "max_pages": 1000}


@pytest.fixture(scope="module")
def source(corpus_pdf: Callable[[str], Path]) -> bytes:
    return corpus_pdf(SOURCE_FOR_BAD).read_bytes()


@pytest.fixture(scope="module")
def pages(source: bytes) -> list[bytes]:
    out = []
    for image in scan_images(source, [0, 1], dpi=300):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")  # type: ignore[attr-defined]
        out.append(buffer.getvalue())
    return out


@pytest.fixture
def bucket(aws_client: Callable[[str], Any]) -> str:
    name = f"ocr-{uuid.uuid4().hex[:12]}"
    aws_client("s3").create_bucket(Bucket=name)
    return name


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{4,}", text.lower()))


def _adapter(
    textract_client: Any, aws_client: Callable[[str], Any], bucket: str, **options: Any
) -> TextractOcr:
    return TextractOcr(textract_client, aws_client("s3"), bucket, poll_s=0.05, **options)


def test_detect_document_text_page_by_page(
    fake_textract: FakeTextract,
    textract_client: Any,
    aws_client: Any,
    bucket: str,
    pages: list[bytes],
    source: bytes,
) -> None:
    ocr = _adapter(textract_client, aws_client, bucket, async_min_pages=10)
    result = ocr.recognise(pages, timeout_s=120)
    assert fake_textract.targets == ["Textract.DetectDocumentText"] * 2
    assert len(result) == 2 and all(len(lines) > 5 for lines in result)
    truth = extract(source, "s.pdf", **LIMITS)
    page_one = " ".join(b.text for b in truth.blocks if b.page == 1)
    read = " ".join(line.text for line in result[0])
    assert len(_words(page_one) & _words(read)) > 0.9 * len(_words(page_one))
    assert all(0 <= line.top < 1 and line.height > 0 for line in result[0])


def test_many_pages_go_through_an_asynchronous_job_on_s3(
    fake_textract: FakeTextract,
    textract_client: Any,
    aws_client: Any,
    bucket: str,
    pages: list[bytes],
) -> None:
    fake_textract.in_progress_polls = 2
    ocr = _adapter(textract_client, aws_client, bucket, async_min_pages=2)
    by_page = TextractOcr(textract_client, aws_client("s3"), bucket, async_min_pages=10)
    result = ocr.recognise(pages, timeout_s=120)
    assert fake_textract.targets[0] == "Textract.StartDocumentTextDetection"
    polls = fake_textract.targets[1:]
    assert polls and set(polls) == {"Textract.GetDocumentTextDetection"}
    assert len(polls) >= 3  # two IN_PROGRESS answers, then the results
    assert [len(lines) for lines in result] == [
        len(lines) for lines in by_page.recognise(pages, timeout_s=120)
    ]
    assert "Contents" not in aws_client("s3").list_objects_v2(Bucket=bucket)  # upload removed


def test_results_are_read_through_every_next_token(
    fake_textract: FakeTextract,
    textract_client: Any,
    aws_client: Any,
    bucket: str,
    pages: list[bytes],
) -> None:
    fake_textract.in_progress_polls = 0
    fake_textract.max_results = 25  # small result pages
    ocr = _adapter(textract_client, aws_client, bucket, async_min_pages=1)
    result = ocr.recognise(pages, timeout_s=120)
    assert fake_textract.targets.count("Textract.GetDocumentTextDetection") > 4
    assert all(len(lines) > 5 for lines in result)


def test_throttling_is_retryable_and_a_refusal_permanent(
    fake_textract: FakeTextract,
    textract_client: Any,
    aws_client: Any,
    bucket: str,
    pages: list[bytes],
) -> None:
    ocr = _adapter(textract_client, aws_client, bucket)
    fake_textract.fail("ProvisionedThroughputExceededException")
    with pytest.raises(RetryableError, match="busy"):
        ocr.recognise(pages[:1], timeout_s=60)
    fake_textract.fail("UnsupportedDocumentException")
    with pytest.raises(PermanentError, match="UnsupportedDocumentException"):
        ocr.recognise(pages[:1], timeout_s=60)


def test_a_job_that_outlives_the_budget_times_out(
    fake_textract: FakeTextract,
    textract_client: Any,
    aws_client: Any,
    bucket: str,
    pages: list[bytes],
) -> None:
    fake_textract.in_progress_polls = 10_000
    ocr = _adapter(textract_client, aws_client, bucket, async_min_pages=1)
    with pytest.raises(OcrTimeout):
        ocr.recognise(pages[:1], timeout_s=1.0)
    assert "Contents" not in aws_client("s3").list_objects_v2(Bucket=bucket)


def test_unreachable_textract_is_retryable(
    aws_client: Any, bucket: str, pages: list[bytes]
) -> None:
    import boto3
    from botocore.config import Config

    from tests.fixtures.aws import AWS_TEST_CREDENTIALS, AWS_TEST_REGION
    from tests.fixtures.stack import free_port

    client = boto3.client(
        "textract",
        region_name=AWS_TEST_REGION,
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
        **AWS_TEST_CREDENTIALS,
    )
    with pytest.raises(RetryableError, match="cannot be reached"):
        TextractOcr(client, aws_client("s3"), bucket).recognise(pages[:1], timeout_s=10)


def test_a_scanned_pdf_extracts_through_textract(
    fake_textract: FakeTextract, textract_client: Any, aws_client: Any, bucket: str, source: bytes
) -> None:
    ocr = OcrOptions(_adapter(textract_client, aws_client, bucket))
    doc = extract(scan_pdf(source, [0, 1]), "scan.pdf", **LIMITS, ocr=ocr)
    assert doc.ocr_pages == (1, 2) and {b.page for b in doc.blocks} == {1, 2}
