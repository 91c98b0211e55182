"""The rules written once in ``datatorag.domain`` that several services and adapters share."""

from __future__ import annotations

import pytest

from datatorag.domain import media
from datatorag.domain.batching import bounded_batches
from datatorag.domain.blob_keys import (
    chunks_key,
    document_prefixes,
    raw_key,
    validate_key,
)
from datatorag.domain.errors import DatatoRAGError, InvalidKey, InvalidRequest
from datatorag.domain.http import is_retryable_status
from datatorag.domain.spaces import check_space, fallback_space, space_dimension, space_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *[(500, True), (503, True), (599, True), (408, True), (429, True)],
        *[(400, False), (401, False), (403, False), (404, False), (413, False), (422, False)],
    ],
)
def test_retryable_statuses(status: int, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable


def test_batches_keep_order_and_both_limits() -> None:
    sizes = [3, 3, 3, 9, 1, 1, 1, 1, 1]
    batches = list(bounded_batches(sizes, lambda n: n, max_count=4, max_bytes=7))
    assert [n for batch in batches for n in batch] == sizes
    assert batches == [[3, 3], [3], [9], [1, 1, 1, 1], [1]]  # an item over the limit goes alone


def test_batches_of_nothing_and_a_bad_count() -> None:
    assert list(bounded_batches([], len, max_count=2, max_bytes=10)) == []
    with pytest.raises(ValueError, match="max_count"):
        list(bounded_batches(["a"], len, max_count=0, max_bytes=10))


def test_one_table_of_supported_types() -> None:
    assert media.extension_type("Policies/Leave.XHTML") == media.HTML
    assert media.extension_type("notes.text") == media.TEXT
    assert media.extension_type("report.doc") is None
    assert media.is_supported("a.markdown") and not media.is_supported("archive.zip")
    assert {
        media.PDF,
        media.DOCX,
        media.HTML,
        media.MARKDOWN,
        media.TEXT,
    } == media.SUPPORTED_MEDIA_TYPES


def test_a_documents_keys_lie_under_its_prefixes() -> None:
    raw_prefix, chunks_prefix = document_prefixes("acme", "doc1")
    assert raw_key("acme", "doc1", "v1", ".pdf") == raw_prefix + "v1.pdf"
    assert chunks_key("acme", "doc1", "v1") == chunks_prefix + "v1.json"
    # doc1's prefixes never take in doc10's files
    assert not raw_key("acme", "doc10", "v1", ".pdf").startswith(raw_prefix)


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "a\\b", "a/.tmp-x"])
def test_unsafe_blob_keys_are_invalid_requests(key: str) -> None:
    with pytest.raises(InvalidKey) as caught:
        validate_key(key)
    assert isinstance(caught.value, InvalidRequest) and isinstance(caught.value, DatatoRAGError)


def test_prefixes_may_be_empty_or_end_in_a_slash() -> None:
    assert validate_key("", prefix=True) == ""
    assert validate_key("tenants/acme/", prefix=True) == "tenants/acme/"


def test_embedding_space_names() -> None:
    assert space_name("/models/all-MiniLM-L6-v2/", "fp32", 384) == "all-MiniLM-L6-v2/fp32/384"
    assert space_name("sentence-transformers/e5 small (v2)", "int8", 384) == (
        "e5-small--v2-/int8/384"
    )
    assert space_dimension("e5-base/fp32/768") == 768
    for bad in ("", "a/b", "a/b/0", "a/b/c", "a b/fp32/3", "/fp32/3", "a/fp32/3/4"):
        with pytest.raises(ValueError, match="not an embedding space name"):
            check_space(bad)
    # An endpoint that does not name its space: the configured one while its dimension fits.
    assert fallback_space("e5-small/fp32/384", 384) == "e5-small/fp32/384"
    assert fallback_space("e5-small/fp32/384", 768) == "unreported/unknown/768"
    assert fallback_space(None, 384) == "unreported/unknown/384"
