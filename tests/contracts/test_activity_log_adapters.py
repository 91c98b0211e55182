"""The ActivityLog contract on SQLite (embedded default) and on the blob store (local and S3 on
moto's server, the AWS adapter's backing)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datatorag.adapters.activity.blob import BlobActivityLog
from datatorag.adapters.activity.sqlite import SqliteActivityLog
from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.blob.s3 import S3BlobStore
from tests.contracts.activity_log import ActivityLogContract


@pytest.mark.unit
class TestSqliteActivityLog(ActivityLogContract):
    @pytest.fixture
    def activity_log(self, tmp_path: Path) -> SqliteActivityLog:
        return SqliteActivityLog(tmp_path / "activity.db")


@pytest.mark.unit
class TestBlobActivityLogOnDisk(ActivityLogContract):
    @pytest.fixture
    def activity_log(self, tmp_path: Path) -> BlobActivityLog:
        return BlobActivityLog(LocalBlobStore(tmp_path / "blobs"))


@pytest.mark.integration
class TestBlobActivityLogOnS3(ActivityLogContract):
    @pytest.fixture
    def activity_log(
        self, aws_client: Callable[[str], Any], unique_name: Callable[[str], str]
    ) -> BlobActivityLog:
        store = S3BlobStore(aws_client("s3"), unique_name("activity"))
        store.ensure_bucket()
        return BlobActivityLog(store)
