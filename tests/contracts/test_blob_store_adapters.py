"""The BlobStore contract on the local file system and on S3 (moto server over HTTP)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.blob.s3 import S3BlobStore
from datatorag.domain.errors import InvalidKey
from datatorag.ports import BlobStore
from tests.contracts.blob_store import BlobStoreContract


@pytest.mark.unit
class TestLocalBlobStore(BlobStoreContract):
    @pytest.fixture
    def blob_store(self, tmp_path: Path) -> LocalBlobStore:
        return LocalBlobStore(tmp_path / "blobs")

    def test_objects_are_files_under_the_root(self, tmp_path: Path) -> None:
        store = LocalBlobStore(tmp_path / "blobs")
        store.put("tenants/acme/raw/a.pdf", b"%PDF")
        assert (tmp_path / "blobs" / "tenants" / "acme" / "raw" / "a.pdf").read_bytes() == b"%PDF"

    def test_writes_leave_no_temporary_files(self, blob_store: LocalBlobStore) -> None:
        for n in range(5):
            blob_store.put("tenants/acme/k", str(n).encode())
        assert sorted(os.listdir(blob_store.root / "tenants" / "acme")) == ["k"]

    def test_symlink_out_of_the_root_is_refused(self, tmp_path: Path) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        store = LocalBlobStore(tmp_path / "blobs")
        (store.root / "tenants").symlink_to(outside)
        with pytest.raises(InvalidKey):
            store.put("tenants/secret", b"x")
        assert list(outside.iterdir()) == []

    def test_key_through_an_object_is_refused(self, blob_store: LocalBlobStore) -> None:
        blob_store.put("tenants/acme/doc", b"x")
        with pytest.raises(InvalidKey):
            blob_store.put("tenants/acme/doc/inner", b"y")
        with pytest.raises(InvalidKey):
            blob_store.put("tenants/acme", b"z")  # a prefix of other keys
        assert blob_store.get("tenants/acme/doc") == b"x"

    def test_reserved_temporary_prefix_is_refused(self, blob_store: LocalBlobStore) -> None:
        with pytest.raises(InvalidKey):
            blob_store.put("tenants/.tmp-x", b"x")


@pytest.mark.integration
class TestS3BlobStore(BlobStoreContract):
    @pytest.fixture
    def blob_store(
        self, aws_client: Callable[[str], Any], unique_name: Callable[[str], str]
    ) -> S3BlobStore:
        store = S3BlobStore(aws_client("s3"), unique_name("blobs"))
        store.ensure_bucket()
        return store

    def test_ensure_bucket_is_idempotent(self, blob_store: S3BlobStore) -> None:
        blob_store.put("k", b"kept")
        blob_store.ensure_bucket()
        assert blob_store.get("k") == b"kept"

    def test_bucket_is_not_created_implicitly(
        self, aws_client: Callable[[str], Any], unique_name: Callable[[str], str]
    ) -> None:
        store: BlobStore = S3BlobStore(aws_client("s3"), unique_name("absent"))
        with pytest.raises(ClientError, match="NoSuchBucket"):
            store.put("k", b"x")

    def test_list_pages_past_a_thousand_keys(self, blob_store: S3BlobStore) -> None:
        keys = [f"tenants/acme/chunks/{n:05d}" for n in range(1005)]
        for key in keys:
            blob_store.put(key, b"")
        assert list(blob_store.list("tenants/acme/")) == keys
