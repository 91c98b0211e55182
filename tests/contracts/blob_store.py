"""Behaviour every BlobStore adapter must show.

Subclass ``BlobStoreContract`` in a ``Test*`` class and provide a ``blob_store`` fixture that
returns an empty store.
"""

from __future__ import annotations

import random

import pytest

from datatorag.domain.errors import BlobNotFound, InvalidKey
from datatorag.ports import BlobStore

UNSAFE_KEYS = [
    "",
    "..",
    "../outside",
    "tenants/../../outside",
    "tenants/acme/..",
    "/etc/passwd",
    "tenants\\acme\\doc.pdf",
    "tenants/acme/doc\x00.pdf",
    "tenants//doc.pdf",
    "./doc.pdf",
    "tenants/./doc.pdf",
]


class BlobStoreContract:
    def test_is_a_blob_store(self, blob_store: BlobStore) -> None:
        assert isinstance(blob_store, BlobStore)

    def test_round_trip(self, blob_store: BlobStore) -> None:
        data = bytes(range(256)) * 64
        blob_store.put("tenants/acme/raw/doc-1/v1.pdf", data)
        assert blob_store.get("tenants/acme/raw/doc-1/v1.pdf") == data

    def test_empty_object(self, blob_store: BlobStore) -> None:
        blob_store.put("tenants/acme/empty", b"")
        assert blob_store.get("tenants/acme/empty") == b""

    def test_unicode_and_spaces_in_keys(self, blob_store: BlobStore) -> None:
        key = "tenants/acme/raw/Congés payés 2024 (v2).pdf"
        blob_store.put(key, b"conges")
        assert blob_store.get(key) == b"conges"
        assert list(blob_store.list("tenants/acme/raw/")) == [key]

    def test_put_replaces(self, blob_store: BlobStore) -> None:
        blob_store.put("tenants/acme/k", b"first version, longer")
        blob_store.put("tenants/acme/k", b"second")
        assert blob_store.get("tenants/acme/k") == b"second"
        assert list(blob_store.list("tenants/acme/")) == ["tenants/acme/k"]

    def test_get_missing_raises_blob_not_found(self, blob_store: BlobStore) -> None:
        with pytest.raises(BlobNotFound):
            blob_store.get("tenants/acme/never-written")

    def test_delete_removes_and_is_idempotent(self, blob_store: BlobStore) -> None:
        blob_store.put("tenants/acme/k", b"x")
        blob_store.delete("tenants/acme/k")
        with pytest.raises(BlobNotFound):
            blob_store.get("tenants/acme/k")
        blob_store.delete("tenants/acme/k")  # already gone: not an error
        blob_store.delete("tenants/acme/never-written")
        assert list(blob_store.list("tenants/acme/")) == []

    def test_list_by_prefix_is_sorted(self, blob_store: BlobStore) -> None:
        keys = [
            "tenants/t1/b.pdf",
            "tenants/t1/a.pdf",
            "tenants/t1/sub/c.pdf",
            "tenants/t1/a-b.pdf",
            "tenants/t1/aB.pdf",
            "tenants/t10/x.pdf",
            "tenants/t2/y.pdf",
            "other/z.pdf",
        ]
        for key in random.sample(keys, len(keys)):
            blob_store.put(key, key.encode())
        assert list(blob_store.list("tenants/t1/")) == sorted(k for k in keys if "/t1/" in k)
        # A prefix is a plain string prefix (S3's meaning), not a folder.
        assert list(blob_store.list("tenants/t1")) == sorted(
            k for k in keys if k.startswith("tenants/t1")
        )
        assert list(blob_store.list("tenants/t1/a")) == [
            "tenants/t1/a-b.pdf",
            "tenants/t1/a.pdf",
            "tenants/t1/aB.pdf",
        ]
        assert list(blob_store.list("")) == sorted(keys)
        assert list(blob_store.list("nothing/here/")) == []

    @pytest.mark.parametrize("key", UNSAFE_KEYS)
    def test_unsafe_keys_are_refused(self, blob_store: BlobStore, key: str) -> None:
        with pytest.raises(InvalidKey):
            blob_store.put(key, b"x")
        with pytest.raises(InvalidKey):
            blob_store.get(key)
        with pytest.raises(InvalidKey):
            blob_store.delete(key)

    def test_unsafe_prefix_is_refused(self, blob_store: BlobStore) -> None:
        with pytest.raises(InvalidKey):
            blob_store.list("../")
        with pytest.raises(InvalidKey):
            blob_store.list("/tenants/")
