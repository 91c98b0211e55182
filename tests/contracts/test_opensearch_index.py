"""``OpenSearchIndex`` against the ``SearchIndex`` behaviour suite, on a real OpenSearch cluster.

The cluster is ``OPENSEARCH_URL`` when set (e.g. ``http://admin:secret@127.0.0.1:9200``), else
one started with testcontainers when a Docker engine answers (``OPENSEARCH_IMAGE``, by default
``opensearchproject/opensearch:2.19.1``, the CloudFormation stack's engine version); otherwise
these tests are skipped. Each test gets its own index prefix, deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opensearchpy import OpenSearch

from datatorag.adapters.index.opensearch import OpenSearchIndex
from datatorag.adapters.index.opensearch.queries import keyword_query, vector_query
from datatorag.ports import SearchIndex
from tests.contracts.search_index import TENANT, SearchIndexContract, index_doc, unit

pytestmark = pytest.mark.integration

DEFAULT_IMAGE = "opensearchproject/opensearch:2.19.1"
SKIP_REASON = "OpenSearch not available: set OPENSEARCH_URL or run a Docker engine"


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@pytest.fixture(scope="session")
def opensearch_url() -> Iterator[str]:
    """A real cluster's URL: ``OPENSEARCH_URL``, or a container started for the session."""
    url = os.environ.get("OPENSEARCH_URL")
    if url:
        yield url
        return
    if not _docker_answers():
        pytest.skip(SKIP_REASON)
    # Imported here: testcontainers (pip install 'testcontainers[opensearch]==4.15.0') is only
    # needed where a Docker engine runs.
    module = pytest.importorskip(
        "testcontainers.community.opensearch", reason="Docker runs but testcontainers is missing"
    )
    container = module.OpenSearchContainer(
        os.environ.get("OPENSEARCH_IMAGE", DEFAULT_IMAGE), security_enabled=False
    ).with_env("OPENSEARCH_JAVA_OPTS", "-Xms512m -Xmx512m")
    with container:
        config = container.get_config()
        yield f"http://{config['host']}:{config['port']}"


@pytest.fixture
def opensearch(opensearch_url: str) -> Iterator[OpenSearch]:
    client = OpenSearch(hosts=[opensearch_url], timeout=60)
    yield client
    client.close()


@pytest.fixture
def prefix(opensearch: OpenSearch) -> Iterator[str]:
    """A fresh index prefix; every index under it is deleted after the test."""
    prefix = f"test-{uuid.uuid4().hex[:10]}-"
    yield prefix
    names = opensearch.indices.get(index=f"{prefix}*", ignore=404)
    for name in names if "error" not in names else []:
        opensearch.indices.delete(index=name)


class TestOpenSearchIndex(SearchIndexContract):
    @pytest.fixture
    def search_index(self, opensearch_url: str, prefix: str) -> Iterator[SearchIndex]:
        index = OpenSearchIndex(
            OpenSearch(hosts=[opensearch_url], timeout=60), prefix=prefix, replicas=0
        )
        yield index
        index.close()


# -- OpenSearch only ---------------------------------------------------------------------------


def _chunk_generations(client: OpenSearch, index: str) -> set[str]:
    client.indices.refresh(index=index)
    response = client.search(index=index, body={"size": 1000, "_source": ["generation"]})
    return {hit["_source"]["generation"] for hit in response["hits"]["hits"]}


def test_retired_generations_are_deleted_after_the_grace(
    opensearch: OpenSearch, opensearch_url: str, prefix: str
) -> None:
    index = OpenSearchIndex(
        OpenSearch(hosts=[opensearch_url]), prefix=prefix, replicas=0, retire_grace_s=0.0
    )
    index_doc(index, "d1", ["First version."])
    index_doc(index, "d1", ["Second version."], version="v2")
    manifest = opensearch.get(index=f"{prefix}manifests", id=TENANT)["_source"]
    assert _chunk_generations(opensearch, index.chunk_index(TENANT)) == {manifest["active"]["d1"]}
    assert manifest["retired"] == []
    index.delete_document(TENANT, "d1")
    index_doc(index, "d2", ["Another document."])  # its write purges what d1 retired
    assert _chunk_generations(opensearch, index.chunk_index(TENANT)) == set(
        opensearch.get(index=f"{prefix}manifests", id=TENANT)["_source"]["active"].values()
    )


def test_the_hybrid_pipeline_serves_a_hybrid_query(
    opensearch: OpenSearch, opensearch_url: str, prefix: str
) -> None:
    """The server-side alternative to RRF runs with the adapter's own BM25 and knn clauses."""
    index = OpenSearchIndex(OpenSearch(hosts=[opensearch_url]), prefix=prefix, replicas=0)
    vector = unit(3)
    index_doc(index, "d1", ["Parental leave lasts sixteen weeks."], [vector])
    index_doc(index, "d2", ["Expenses are reimbursed monthly."])
    pipeline = index.ensure_hybrid_pipeline(weights=(0.4, 0.6))
    manifest = opensearch.get(index=f"{prefix}manifests", id=TENANT)["_source"]
    visible: list[Any] = [{"terms": {"generation": sorted(manifest["active"].values())}}]
    bm25 = keyword_query(["parental", "leave"], 5, visible)["query"]
    knn = vector_query(vector, 5, visible)["query"]
    try:
        response = opensearch.search(
            index=index.chunk_index(TENANT),
            body={"size": 5, "query": {"hybrid": {"queries": [bm25, knn]}}},
            search_pipeline=pipeline,
        )
    finally:
        opensearch.search_pipeline.delete(id=pipeline)
    assert response["hits"]["hits"][0]["_source"]["doc_id"] == "d1"
