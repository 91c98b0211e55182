"""The EmployeeDirectory contract on SQLite and on DynamoDB (moto server over HTTP)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from datatorag.adapters.employees.dynamodb import DynamoDbEmployeeDirectory
from datatorag.adapters.employees.sqlite import COLUMNS, SqliteEmployeeDirectory
from datatorag.domain.employees import Employee
from tests.contracts.employee_directory import ADA, EmployeeDirectoryContract
from tests.fixtures.aws import AWS_TEST_CREDENTIALS, AWS_TEST_REGION


@pytest.mark.unit
class TestSqliteEmployeeDirectory(EmployeeDirectoryContract):
    @pytest.fixture
    def employee_directory(self, tmp_path: Path) -> Iterator[SqliteEmployeeDirectory]:
        directory = SqliteEmployeeDirectory(tmp_path / "employees.db")
        yield directory
        directory.close()

    def test_columns_are_the_employee_fields(self) -> None:
        assert tuple(f.name for f in dataclasses.fields(Employee)) == COLUMNS

    def test_survives_a_reopen(self, tmp_path: Path) -> None:
        SqliteEmployeeDirectory(tmp_path / "e.db").put("acme", ADA)
        assert SqliteEmployeeDirectory(tmp_path / "e.db").get("acme", "101") == ADA


@pytest.mark.integration
class TestDynamoDbEmployeeDirectory(EmployeeDirectoryContract):
    @pytest.fixture
    def employee_directory(
        self, moto_server: str, unique_name: Callable[[str], str]
    ) -> DynamoDbEmployeeDirectory:
        resource = boto3.resource(
            "dynamodb",
            endpoint_url=moto_server,
            region_name=AWS_TEST_REGION,
            **AWS_TEST_CREDENTIALS,
        )
        directory = DynamoDbEmployeeDirectory(resource.Table(unique_name("employees")))
        directory.ensure_table()
        return directory

    def test_only_the_employee_fields_are_stored(
        self, employee_directory: DynamoDbEmployeeDirectory
    ) -> None:
        employee_directory.put("acme", ADA)
        item: dict[str, Any] = employee_directory.table.get_item(
            Key={"tenant": "acme", "id": "101"}
        )["Item"]
        assert set(item) == {"tenant", *COLUMNS}
