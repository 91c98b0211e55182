"""The Queue contract on SQLite and on SQS (moto server over HTTP).

What only one adapter does sits in tests/unit/test_sqlite_queue.py and
tests/integration/test_sqs_queue.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from datatorag.adapters.blob.s3 import S3BlobStore
from datatorag.adapters.queue.sqlite import SqliteQueue
from datatorag.adapters.queue.sqs import SqsQueue
from tests.contracts.queue import MakeQueue, QueueContract

# -- SQLite -----------------------------------------------------------------------------------


@pytest.mark.unit
class TestSqliteQueue(QueueContract):
    visibility = 0.3

    @pytest.fixture
    def make_queue(self, tmp_path: Path) -> Iterator[MakeQueue]:
        made: list[SqliteQueue] = []

        def make(
            *, max_receives: int = 2, visibility_timeout: float = self.visibility
        ) -> SqliteQueue:
            # Every queue of a test shares one file, as the services' queues do.
            queue = SqliteQueue(
                tmp_path / "queues.db",
                f"q-{uuid.uuid4().hex[:8]}",
                max_receives=max_receives,
                visibility_timeout=visibility_timeout,
            )
            made.append(queue)
            return queue

        yield make
        for queue in made:
            queue.close()


# -- SQS --------------------------------------------------------------------------------------


@pytest.mark.integration
class TestSqsQueue(QueueContract):
    visibility = 1.0  # SQS counts whole seconds
    # moto deletes with an old receipt; AWS documents that it "might not": both are allowed.
    stale_delete_keeps_message = False

    @pytest.fixture
    def make_queue(
        self,
        aws_client: Callable[[str], Any],
        unique_name: Callable[[str], str],
        payload_store: S3BlobStore,
    ) -> MakeQueue:
        sqs = aws_client("sqs")

        def make(*, max_receives: int = 2, visibility_timeout: float = self.visibility) -> SqsQueue:
            return SqsQueue.ensure(
                sqs,
                unique_name("q"),
                max_receives=max_receives,
                visibility_timeout=visibility_timeout,
                payloads=payload_store,
            )

        return make
