import sqlite3

import pytest

from datatorag_query_api.keys import ApiKeyStore

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path):
    return ApiKeyStore(tmp_path / "keys.db", pepper="test-pepper")


def test_a_key_authenticates_as_its_tenant(store):
    key = store.create("acme")
    info = store.authenticate(key)
    assert info is not None and info.tenant == "acme"


def test_keys_are_stored_only_as_hashes(store, tmp_path):
    key = store.create("acme")
    dump = "\n".join(sqlite3.connect(tmp_path / "keys.db").iterdump())
    assert key not in dump
    assert key.split("_")[2] not in dump  # not even the secret part


def test_a_tampered_or_unknown_key_is_refused(store):
    key = store.create("acme")
    assert store.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.authenticate("dtr_000000000000_" + "x" * 43) is None
    assert store.authenticate("") is None
    assert store.authenticate("'; DROP TABLE api_keys; --") is None


def test_the_pepper_is_part_of_the_hash(store, tmp_path):
    key = store.create("acme")
    other = ApiKeyStore(tmp_path / "keys.db", pepper="another-pepper")
    assert other.authenticate(key) is None


def test_revoked_keys_stop_working_and_only_the_owner_can_revoke(store):
    key = store.create("acme")
    assert not store.revoke("globex", key)  # another tenant cannot revoke it
    assert store.authenticate(key) is not None
    assert store.revoke("acme", key)
    assert store.authenticate(key) is None
    assert not store.revoke("acme", key)


def test_tenant_names_are_validated(store):
    with pytest.raises(ValueError, match="tenant names"):
        store.create("../etc")
