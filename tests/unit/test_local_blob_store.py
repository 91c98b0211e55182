"""What only the local blob store does: files under its root, atomic writes, no escapes.

The behaviour every blob store shares is tests/contracts/test_blob_store_adapters.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.domain.errors import InvalidKey

pytestmark = pytest.mark.unit


@pytest.fixture
def local_store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def test_objects_are_files_under_the_root(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    store.put("tenants/acme/raw/a.pdf", b"%PDF")
    assert (tmp_path / "blobs" / "tenants" / "acme" / "raw" / "a.pdf").read_bytes() == b"%PDF"


def test_writes_leave_no_temporary_files(local_store: LocalBlobStore) -> None:
    for n in range(5):
        local_store.put("tenants/acme/k", str(n).encode())
    assert sorted(os.listdir(local_store.root / "tenants" / "acme")) == ["k"]


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store = LocalBlobStore(tmp_path / "blobs")
    (store.root / "tenants").symlink_to(outside)
    with pytest.raises(InvalidKey):
        store.put("tenants/secret", b"x")
    assert list(outside.iterdir()) == []


def test_key_through_an_object_is_refused(local_store: LocalBlobStore) -> None:
    local_store.put("tenants/acme/doc", b"x")
    with pytest.raises(InvalidKey):
        local_store.put("tenants/acme/doc/inner", b"y")
    with pytest.raises(InvalidKey):
        local_store.put("tenants/acme", b"z")  # a prefix of other keys
    assert local_store.get("tenants/acme/doc") == b"x"


def test_reserved_temporary_prefix_is_refused(local_store: LocalBlobStore) -> None:
    with pytest.raises(InvalidKey):
        local_store.put("tenants/.tmp-x", b"x")
