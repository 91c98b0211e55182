"""The SecretStore contract: Fernet over the local blob store and over S3, and AWS Secrets
Manager (moto server over HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.blob.s3 import S3BlobStore
from datatorag.adapters.secrets.fernet import FernetSecretStore, local_key
from datatorag.adapters.secrets.secretsmanager import SecretsManagerStore
from datatorag.domain.errors import SecretUnreadable
from tests.contracts.secret_store import URI, SecretStoreContract


@pytest.mark.unit
class TestFernetSecretStore(SecretStoreContract):
    @pytest.fixture
    def secret_store(self, tmp_path: Path) -> FernetSecretStore:
        return FernetSecretStore(LocalBlobStore(tmp_path / "blobs"), Fernet.generate_key())

    def test_nothing_on_disk_holds_the_secret(self, tmp_path: Path) -> None:
        store = FernetSecretStore(LocalBlobStore(tmp_path / "blobs"), Fernet.generate_key())
        store.put("sources/acme/s", URI)
        on_disk = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
        assert b"s3cr3t-pw" not in on_disk and b"abc123" not in on_disk and on_disk

    def test_another_key_cannot_read_it(self, tmp_path: Path) -> None:
        blobs = LocalBlobStore(tmp_path / "blobs")
        FernetSecretStore(blobs, Fernet.generate_key()).put("sources/acme/s", URI)
        with pytest.raises(SecretUnreadable, match="DATATORAG_SECRETS_KEY"):
            FernetSecretStore(blobs, Fernet.generate_key()).get("sources/acme/s")

    def test_a_tampered_secret_is_refused(self, tmp_path: Path) -> None:
        blobs = LocalBlobStore(tmp_path / "blobs")
        store = FernetSecretStore(blobs, Fernet.generate_key())
        store.put("sources/acme/s", URI)
        token = bytearray(blobs.get("system/secrets/sources/acme/s"))
        token[40] ^= 1
        blobs.put("system/secrets/sources/acme/s", bytes(token))
        with pytest.raises(SecretUnreadable):
            store.get("sources/acme/s")

    def test_the_local_key_is_made_once_and_private(self, tmp_path: Path) -> None:
        path = tmp_path / "data" / "secrets.key"
        first = local_key(path)
        assert local_key(path) == first
        assert path.stat().st_mode & 0o777 == 0o600
        Fernet(first)  # a valid key
        assert [p.name for p in path.parent.iterdir()] == ["secrets.key"]


@pytest.mark.integration
class TestFernetSecretStoreOnS3(SecretStoreContract):
    @pytest.fixture
    def secret_store(
        self, aws_client: Callable[[str], Any], unique_name: Callable[[str], str]
    ) -> FernetSecretStore:
        blobs = S3BlobStore(aws_client("s3"), unique_name("secrets"))
        blobs.ensure_bucket()
        return FernetSecretStore(blobs, Fernet.generate_key())


@pytest.mark.integration
class TestSecretsManagerStore(SecretStoreContract):
    @pytest.fixture
    def secret_store(
        self, aws_client: Callable[[str], Any], unique_name: Callable[[str], str]
    ) -> SecretsManagerStore:
        return SecretsManagerStore(aws_client("secretsmanager"), prefix=unique_name("t") + "/")

    def test_secrets_sit_under_the_prefix(
        self, aws_client: Callable[[str], Any], unique_name: Callable[[str], str]
    ) -> None:
        client = aws_client("secretsmanager")
        prefix = unique_name("p") + "/"
        SecretsManagerStore(client, prefix=prefix).put("sources/acme/s", URI)
        value = client.get_secret_value(SecretId=f"{prefix}sources/acme/s")
        assert value["SecretString"] == URI
