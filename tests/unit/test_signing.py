"""Employee tokens: minted by a vendor with a tenant's signing secret, verified by the API."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.domain.employees import Employee
from datatorag_query_api.signing import InvalidToken, SigningSecrets

pytestmark = pytest.mark.unit
EMPLOYEE = Employee("E42", country="GB", region="ENG", employment_type="full-time")


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture
def signing(blobs: LocalBlobStore) -> SigningSecrets:
    return SigningSecrets(blobs, "pepper")


def test_a_minted_token_verifies_to_its_tenant_and_employee(signing: SigningSecrets) -> None:
    kid, secret = signing.create("acme")
    claims = signing.verify(signing.mint("acme", kid, secret, EMPLOYEE, ttl_s=300))
    assert claims.tenant == "acme"
    assert claims.employee == EMPLOYEE


def test_the_secret_is_stored_encrypted_and_never_listed(
    signing: SigningSecrets, blobs: LocalBlobStore
) -> None:
    kid, secret = signing.create("acme")
    stored = b"".join(blobs.get(k) for k in blobs.list("system/"))
    assert secret.encode() not in stored
    assert [s.kid for s in signing.list("acme")] == [kid]
    assert secret not in repr(signing.list("acme"))
    assert signing.list("globex") == []
    # Another deployment's pepper cannot decrypt it.
    other = SigningSecrets(blobs, "another pepper")
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        other.verify(signing.mint("acme", kid, secret, EMPLOYEE, ttl_s=300))


def test_a_tampered_token_is_refused(signing: SigningSecrets) -> None:
    kid, secret = signing.create("acme")
    token = signing.mint("acme", kid, secret, EMPLOYEE, ttl_s=300)
    header, payload, signature = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["employee"]["country"] = "US"
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    with pytest.raises(InvalidToken, match="signature"):
        signing.verify(f"{header}.{forged}.{signature}")


def test_expired_wrong_tenant_long_lived_and_revoked_tokens_are_refused(
    signing: SigningSecrets,
) -> None:
    kid, secret = signing.create("acme")
    with pytest.raises(InvalidToken, match="expired"):
        signing.verify(signing.mint("acme", kid, secret, EMPLOYEE, ttl_s=-60))
    with pytest.raises(InvalidToken, match="another tenant"):
        signing.verify(signing.mint("globex", kid, secret, EMPLOYEE, ttl_s=300))
    with pytest.raises(InvalidToken, match="at most"):
        signing.verify(signing.mint("acme", kid, secret, EMPLOYEE, ttl_s=7 * 24 * 3600))
    token = signing.mint("acme", kid, secret, EMPLOYEE, ttl_s=300)
    assert signing.revoke("globex", kid) is False  # not theirs
    assert signing.revoke("acme", kid) is True
    with pytest.raises(InvalidToken, match="revoked"):
        signing.verify(token)


def test_tokens_signed_otherwise_are_refused(signing: SigningSecrets) -> None:
    kid, _ = signing.create("acme")
    now = int(time.time())
    claims = {"sub": "E1", "tenant": "acme", "iat": now, "exp": now + 60}
    guessed = jwt.encode(
        claims,
        "not the secret, though long enough for HS256",
        algorithm="HS256",
        headers={"kid": kid},
    )
    with pytest.raises(InvalidToken):
        signing.verify(guessed)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": kid})
    with pytest.raises(InvalidToken):
        signing.verify(unsigned)
    with pytest.raises(InvalidToken, match="unknown"):
        signing.verify(
            jwt.encode(claims, "x" * 32, algorithm="HS256", headers={"kid": "../../etc"})
        )
    with pytest.raises(InvalidToken, match="not a JWT"):
        signing.verify("garbage")
