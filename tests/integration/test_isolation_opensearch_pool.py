"""The tenant isolation suite (``test_isolation.py``) through the whole stack, with the index on
a real OpenSearch cluster in the pooled layout: both tenants' chunks in one shared pool index
(``tests/fixtures/opensearch.py``: ``OPENSEARCH_URL``, or a container; skipped otherwise)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from opensearchpy import OpenSearch

from tests.fixtures.stack import RunningStack, start_stack
from tests.integration.test_isolation import (  # noqa: F401  (collected again, on the pool)
    pair,
    test_a_revoked_key_is_refused,
    test_answers_cite_only_the_callers_documents,
    test_bodies_naming_another_tenant_or_malformed_are_refused,
    test_deleting_a_shared_id_removes_only_the_callers_copy,
    test_each_tenant_finds_its_own_documents,
    test_generated_queries_and_filters_stay_in_the_tenant,
    test_header_tricks_never_switch_tenants,
    test_listing_and_paging_show_only_the_callers_documents,
    test_odd_document_ids_are_404_problems,
    test_search_never_crosses_tenants_in_any_mode_or_filter,
    test_the_other_tenants_documents_are_404_and_survive_a_delete,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def running_stack(
    tmp_path_factory: pytest.TempPathFactory, opensearch_url: str
) -> Iterator[RunningStack]:
    """The stack on OpenSearch, every tenant in pool 0 (the default layout); its indices are
    deleted afterwards."""
    prefix = f"test-iso-{uuid.uuid4().hex[:10]}-"
    env = {
        "DATATORAG_INDEX_BACKEND": "opensearch",
        "DATATORAG_OPENSEARCH_URL": opensearch_url,
        "DATATORAG_OPENSEARCH_INDEX_PREFIX": prefix,
        "DATATORAG_OPENSEARCH_REPLICAS": "0",
        "DATATORAG_OPENSEARCH_LAYOUT": "pooled",
        "DATATORAG_OPENSEARCH_POOL_INDICES": "1",
    }
    yield from start_stack(tmp_path_factory, env)
    client = OpenSearch(hosts=[opensearch_url], timeout=60)
    names = client.indices.get(index=f"{prefix}*", ignore=404)
    assert f"{prefix}pool-0" in names, sorted(
        names
    )  # both tenants were in the one pool, and only there
    assert not [n for n in names if n.startswith(f"{prefix}chunks-")]
    for name in names if "error" not in names else []:
        client.indices.delete(index=name)
    client.close()
