"""Tenant names: one customer is one tenant, and its name is part of keys, paths and index names."""

from __future__ import annotations

import re

from datatorag.domain.errors import InvalidKey

TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # always used with fullmatch
TENANT_RULE = (
    "tenant names are 1-63 lowercase letters, digits, '_' or '-', starting with a letter or digit"
)


def is_tenant_name(tenant: object) -> bool:
    return isinstance(tenant, str) and TENANT_NAME.fullmatch(tenant) is not None


def validate_tenant(tenant: str) -> str:
    """``tenant`` itself, or ``InvalidKey`` when it is not a valid tenant name."""
    if not is_tenant_name(tenant):
        raise InvalidKey(f"invalid tenant name {tenant!r}: {TENANT_RULE}")
    return tenant
