"""The pooled-layout isolation suite (``test_isolation_opensearch_pool.py``) through the whole
stack where no OpenSearch cluster runs: the services talk to ``FakeOpenSearch``
(``tests/fixtures/opensearch_fake.py``), a FAKE of the documented REST API that evaluates the
queries and routing it is sent. What it proves: every request the real services send for two
tenants sharing one pool index keeps them apart. What it cannot: OpenSearch's own ranking."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.fixtures.opensearch_fake import FakeOpenSearch
from tests.integration.test_isolation_opensearch_pool import *  # noqa: F403  (the same suite)
from tests.integration.test_isolation_opensearch_pool import running_stack  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def opensearch_url() -> Iterator[str]:
    server = FakeOpenSearch()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.url
    server.shutdown()
    server.server_close()
