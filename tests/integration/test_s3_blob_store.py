"""What only the S3 blob store does: its bucket, paging past 1,000 keys (moto over HTTP).

The behaviour every blob store shares is tests/contracts/test_blob_store_adapters.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from datatorag.adapters.blob.s3 import S3BlobStore
from datatorag.ports import BlobStore

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_store(aws_client: Callable[[str], Any], unique_name: Callable[[str], str]) -> S3BlobStore:
    store = S3BlobStore(aws_client("s3"), unique_name("blobs"))
    store.ensure_bucket()
    return store


def test_ensure_bucket_is_idempotent(s3_store: S3BlobStore) -> None:
    s3_store.put("k", b"kept")
    s3_store.ensure_bucket()
    assert s3_store.get("k") == b"kept"


def test_bucket_is_not_created_implicitly(
    aws_client: Callable[[str], Any], unique_name: Callable[[str], str]
) -> None:
    store: BlobStore = S3BlobStore(aws_client("s3"), unique_name("absent"))
    with pytest.raises(ClientError, match="NoSuchBucket"):
        store.put("k", b"x")


def test_list_pages_past_a_thousand_keys(s3_store: S3BlobStore) -> None:
    keys = [f"tenants/acme/chunks/{n:05d}" for n in range(1005)]
    for key in keys:
        s3_store.put(key, b"")
    assert list(s3_store.list("tenants/acme/")) == keys
