"""Behaviour every SecretStore adapter must show.

Subclass ``SecretStoreContract`` in a ``Test*`` class and provide a ``secret_store`` fixture that
returns an empty store.
"""

from __future__ import annotations

import pytest

from datatorag.domain.errors import InvalidKey, SecretNotFound
from datatorag.ports import SecretStore

URI = "sftp://alice:s3cr3t-pw@files.example.com:2222/hr?token=abc123"


class SecretStoreContract:
    def test_is_a_secret_store(self, secret_store: SecretStore) -> None:
        assert isinstance(secret_store, SecretStore)

    def test_round_trip(self, secret_store: SecretStore) -> None:
        secret_store.put("sources/acme/src_0123456789abcdef", URI)
        assert secret_store.get("sources/acme/src_0123456789abcdef") == URI

    def test_unicode_and_long_values_survive(self, secret_store: SecretStore) -> None:
        value = "pässwörd-🔑-" + "x" * 4000
        secret_store.put("sources/acme/long", value)
        assert secret_store.get("sources/acme/long") == value

    def test_put_replaces(self, secret_store: SecretStore) -> None:
        secret_store.put("sources/acme/s", "old")
        secret_store.put("sources/acme/s", "new")
        assert secret_store.get("sources/acme/s") == "new"

    def test_missing_secret(self, secret_store: SecretStore) -> None:
        with pytest.raises(SecretNotFound):
            secret_store.get("sources/acme/never-stored")

    def test_delete_then_missing_and_delete_again_is_fine(self, secret_store: SecretStore) -> None:
        secret_store.put("sources/acme/s", "v")
        secret_store.delete("sources/acme/s")
        with pytest.raises(SecretNotFound):
            secret_store.get("sources/acme/s")
        secret_store.delete("sources/acme/s")
        secret_store.delete("sources/acme/never-stored")

    def test_a_deleted_name_can_be_used_again(self, secret_store: SecretStore) -> None:
        secret_store.put("sources/acme/s", "first")
        secret_store.delete("sources/acme/s")
        secret_store.put("sources/acme/s", "second")
        assert secret_store.get("sources/acme/s") == "second"

    def test_names_are_separate(self, secret_store: SecretStore) -> None:
        secret_store.put("sources/acme/s", "acme's")
        secret_store.put("sources/globex/s", "globex's")
        assert secret_store.get("sources/acme/s") == "acme's"
        assert secret_store.get("sources/globex/s") == "globex's"

    @pytest.mark.parametrize(
        "name", ["", "../escape", "sources/../x", "/abs", "a//b", "sources/acme/", "a b", ".hidden"]
    )
    def test_unsafe_names_are_refused(self, secret_store: SecretStore, name: str) -> None:
        with pytest.raises(InvalidKey):
            secret_store.put(name, "v")
