"""The BlobStore contract on the local file system and on S3 (moto server over HTTP).

What only one adapter does sits in tests/unit/test_local_blob_store.py and
tests/integration/test_s3_blob_store.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.blob.s3 import S3BlobStore
from tests.contracts.blob_store import BlobStoreContract


@pytest.mark.unit
class TestLocalBlobStore(BlobStoreContract):
    @pytest.fixture
    def blob_store(self, tmp_path: Path) -> LocalBlobStore:
        return LocalBlobStore(tmp_path / "blobs")


@pytest.mark.integration
class TestS3BlobStore(BlobStoreContract):
    @pytest.fixture
    def blob_store(
        self, aws_client: Callable[[str], Any], unique_name: Callable[[str], str]
    ) -> S3BlobStore:
        store = S3BlobStore(aws_client("s3"), unique_name("blobs"))
        store.ensure_bucket()
        return store
