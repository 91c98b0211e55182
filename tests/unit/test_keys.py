"""API keys in the shared blob store: on the local folder and on S3 (moto server over HTTP)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.blob.s3 import S3BlobStore
from datatorag.domain.blob_keys import API_KEYS_PREFIX
from datatorag.domain.errors import InvalidRequest
from datatorag.ports import BlobStore
from datatorag_query_api.keys import ApiKeyStore


class CountingBlobStore:
    """A real blob store that counts reads: shows how often authentication reaches storage."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.gets = 0
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        with self._lock:
            self.gets += 1
        return self.inner.get(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str) -> Iterator[str]:
        return self.inner.list(prefix)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# Markers per backend: local cases are unit tests; S3 ones start moto's server (integration).
@pytest.fixture(
    params=[
        pytest.param("local", marks=pytest.mark.unit),
        pytest.param("s3", marks=pytest.mark.integration),
    ]
)
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    aws_client: Callable[[str], Any] = request.getfixturevalue("aws_client")
    unique_name: Callable[[str], str] = request.getfixturevalue("unique_name")
    store = S3BlobStore(aws_client("s3"), unique_name("keys"))
    store.ensure_bucket()
    return store


@pytest.fixture
def store(blobs: BlobStore) -> ApiKeyStore:
    return ApiKeyStore(blobs, pepper="test-pepper")


def stored_bytes(blobs: BlobStore, tmp_path: Path) -> bytes:
    """Every object in the store, and for the local store every file under its folder."""
    data = b"\n".join(blobs.get(k) for k in blobs.list(""))
    if isinstance(blobs, LocalBlobStore):
        data += b"\n".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    return data


def test_a_key_authenticates_as_its_tenant(store: ApiKeyStore) -> None:
    key = store.create("acme")
    info = store.authenticate(key)
    assert info is not None and info.tenant == "acme"
    assert key.startswith(f"dtr_{info.key_id}_")


def test_keys_are_stored_only_as_hashes(
    store: ApiKeyStore, blobs: BlobStore, tmp_path: Path
) -> None:
    key = store.create("acme")
    dump = stored_bytes(blobs, tmp_path)
    assert dump  # the scan saw the key's record
    assert key.encode() not in dump
    assert key.split("_", 2)[2].encode() not in dump  # not even the secret part


def test_a_key_is_one_small_json_object(store: ApiKeyStore, blobs: BlobStore) -> None:
    key = store.create("acme")
    key_id = key.split("_")[1]
    assert list(blobs.list(API_KEYS_PREFIX)) == [f"{API_KEYS_PREFIX}{key_id}.json"]
    record = json.loads(blobs.get(f"{API_KEYS_PREFIX}{key_id}.json"))
    assert record["tenant"] == "acme"
    assert len(record["key_hash"]) == 64 and record["revoked_at"] is None
    assert record["created_at"]


def test_a_tampered_or_unknown_key_is_refused(store: ApiKeyStore) -> None:
    key = store.create("acme")
    assert store.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.authenticate("dtr_000000000000_" + "x" * 43) is None
    assert store.authenticate("") is None
    assert store.authenticate("'; DROP TABLE api_keys; --") is None


def test_the_pepper_is_part_of_the_hash(store: ApiKeyStore, blobs: BlobStore) -> None:
    key = store.create("acme")
    other = ApiKeyStore(blobs, pepper="another-pepper")
    assert other.authenticate(key) is None


def test_revoked_keys_stop_working_and_only_the_owner_can_revoke(store: ApiKeyStore) -> None:
    key = store.create("acme")
    assert not store.revoke("globex", key)  # another tenant cannot revoke it
    assert store.authenticate(key) is not None
    assert store.revoke("acme", key)
    assert store.authenticate(key) is None
    assert not store.revoke("acme", key)


def test_a_key_can_be_revoked_by_its_id(store: ApiKeyStore, blobs: BlobStore) -> None:
    key = store.create("acme")
    key_id = key.split("_")[1]
    assert store.revoke("acme", key_id)
    assert store.authenticate(key) is None
    assert json.loads(blobs.get(f"{API_KEYS_PREFIX}{key_id}.json"))["revoked_at"]


def test_revoking_odd_ids_changes_nothing(store: ApiKeyStore, blobs: BlobStore) -> None:
    key = store.create("acme")
    for odd in ("../../etc/passwd", "", "ABCDEFGHIJKL", "dtr_", "000000000000"):
        assert not store.revoke("acme", odd)
    assert store.authenticate(key) is not None
    assert len(list(blobs.list(""))) == 1


def test_tenant_names_are_validated(store: ApiKeyStore, blobs: BlobStore) -> None:
    with pytest.raises(InvalidRequest, match="tenant names"):
        store.create("../etc")
    assert list(blobs.list("")) == []


def test_every_process_sees_the_same_keys(blobs: BlobStore) -> None:
    """Two stores on one blob store stand for two API tasks on one bucket."""
    task_a = ApiKeyStore(blobs, pepper="test-pepper")
    task_b = ApiKeyStore(blobs, pepper="test-pepper")
    key = task_a.create("acme")
    info = task_b.authenticate(key)
    assert info is not None and info.tenant == "acme"
    assert task_b.revoke("acme", key)
    assert task_b.authenticate(key) is None  # the revoking process stops at once


def test_revocation_elsewhere_takes_effect_within_the_cache_ttl(blobs: BlobStore) -> None:
    clock = Clock()
    task_a = ApiKeyStore(blobs, pepper="test-pepper", cache_ttl_s=5.0, clock=clock)
    task_b = ApiKeyStore(blobs, pepper="test-pepper")
    key = task_a.create("acme")
    assert task_a.authenticate(key) is not None  # now cached in task A
    assert task_b.revoke("acme", key)
    clock.now += 4.9
    assert task_a.authenticate(key) is not None  # still within the documented 5 s
    clock.now += 0.2
    assert task_a.authenticate(key) is None


def test_concurrent_requests_read_the_store_once(blobs: BlobStore) -> None:
    counting = CountingBlobStore(blobs)
    store = ApiKeyStore(counting, pepper="test-pepper", cache_ttl_s=60.0)
    key = store.create("acme")
    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(lambda _: store.authenticate(key), range(100)))
    assert all(r is not None and r.tenant == "acme" for r in results)
    assert counting.gets == 1
    unknown = "dtr_000000000000_" + "x" * 43
    with ThreadPoolExecutor(max_workers=50) as pool:
        assert not any(pool.map(lambda _: store.authenticate(unknown), range(50)))
    assert counting.gets == 2  # an unknown id is remembered too


def test_a_damaged_record_is_refused(store: ApiKeyStore, blobs: BlobStore) -> None:
    key = store.create("acme")
    blobs.put(f"{API_KEYS_PREFIX}{key.split('_')[1]}.json", b"{not json")
    assert ApiKeyStore(blobs, pepper="test-pepper").authenticate(key) is None


def test_a_key_has_a_role_admin_unless_asked(store: ApiKeyStore, blobs: BlobStore) -> None:
    admin, query = store.create("acme"), store.create("acme", "query")
    admin_info, query_info = store.authenticate(admin), store.authenticate(query)
    assert admin_info is not None and (admin_info.role, admin_info.is_admin) == ("admin", True)
    assert query_info is not None and (query_info.role, query_info.is_admin) == ("query", False)
    record = json.loads(blobs.get(f"{API_KEYS_PREFIX}{query_info.key_id}.json"))
    assert record["role"] == "query"
    assert store.revoke("acme", query_info.key_id)
    assert store.authenticate(query) is None


def test_keys_made_before_roles_are_admin_keys(store: ApiKeyStore, blobs: BlobStore) -> None:
    key = store.create("acme", "query")
    path = f"{API_KEYS_PREFIX}{key.split('_')[1]}.json"
    record = json.loads(blobs.get(path))
    del record["role"]  # a record as written before roles existed
    blobs.put(path, json.dumps(record).encode())
    info = ApiKeyStore(blobs, pepper="test-pepper").authenticate(key)
    assert info is not None and info.role == "admin"


def test_an_unknown_role_is_refused(store: ApiKeyStore, blobs: BlobStore) -> None:
    with pytest.raises(ValueError, match="role"):
        store.create("acme", "superuser")  # type: ignore[arg-type]
    assert list(blobs.list(API_KEYS_PREFIX)) == []
    key = store.create("acme", "query")
    path = f"{API_KEYS_PREFIX}{key.split('_')[1]}.json"
    record = json.loads(blobs.get(path))
    blobs.put(path, json.dumps({**record, "role": "root"}).encode())  # a damaged record
    assert ApiKeyStore(blobs, pepper="test-pepper").authenticate(key) is None
