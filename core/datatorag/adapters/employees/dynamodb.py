"""EmployeeDirectory on one DynamoDB table: partition key ``tenant``, sort key ``id``.

API reference: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/ (GetItem,
PutItem, DeleteItem, Query with pagination by ``LastEvaluatedKey``, BatchWriteItem through
boto3's ``batch_writer``, which resends unprocessed items). Only ``Employee``'s fields are written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from datatorag.domain.employees import Employee
from datatorag.domain.tenants import validate_tenant
from datatorag.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

_FIELDS = [f.name for f in dataclasses.fields(Employee)]


class DynamoDbEmployeeDirectory:
    def __init__(self, table: Table) -> None:
        self.table = table

    @classmethod
    def from_settings(cls, settings: Settings) -> DynamoDbEmployeeDirectory:
        resource = boto3.resource(
            "dynamodb", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url
        )
        return cls(resource.Table(settings.dynamodb_employees_table))

    def ensure_table(self) -> None:
        """Create the table on demand billing if it does not exist (deployments create it)."""
        try:
            self.table.load()
            return
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
        client = self.table.meta.client
        client.create_table(
            TableName=self.table.name,
            KeySchema=[
                {"AttributeName": "tenant", "KeyType": "HASH"},
                {"AttributeName": "id", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "tenant", "AttributeType": "S"},
                {"AttributeName": "id", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        client.get_waiter("table_exists").wait(TableName=self.table.name)

    def get(self, tenant: str, employee_id: str) -> Employee | None:
        found = self.table.get_item(
            Key={"tenant": validate_tenant(tenant), "id": employee_id}, ConsistentRead=True
        )
        item = found.get("Item")
        return _employee(item) if item else None

    def put(self, tenant: str, employee: Employee) -> None:
        self.table.put_item(Item=_item(validate_tenant(tenant), employee))

    def remove(self, tenant: str, employee_id: str) -> None:
        self.table.delete_item(Key={"tenant": validate_tenant(tenant), "id": employee_id})

    def replace_all(self, tenant: str, employees: Iterable[Employee]) -> int:
        validate_tenant(tenant)
        items = {e.id: _item(tenant, e) for e in employees}  # read the feed before writing
        gone = [i for i in self._ids(tenant) if i not in items]
        with self.table.batch_writer() as batch:
            for item in items.values():
                batch.put_item(Item=item)
            for employee_id in gone:
                batch.delete_item(Key={"tenant": tenant, "id": employee_id})
        return len(items)

    def _ids(self, tenant: str) -> Iterator[str]:
        query: dict[str, Any] = {
            "KeyConditionExpression": "#t = :t",  # names, in case a word is reserved
            "ExpressionAttributeNames": {"#t": "tenant", "#i": "id"},
            "ExpressionAttributeValues": {":t": tenant},
            "ProjectionExpression": "#i",
            "ConsistentRead": True,
        }
        while True:
            page = self.table.query(**query)
            yield from (str(item["id"]) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _item(tenant: str, employee: Employee) -> dict[str, Any]:
    # Absent attributes are left out: DynamoDB items hold no nulls we would need to read back.
    fields = {name: getattr(employee, name) for name in _FIELDS}
    return {"tenant": tenant, **{k: v for k, v in fields.items() if v is not None}}


def _employee(item: dict[str, Any]) -> Employee:
    return Employee(**{name: str(item[name]) for name in _FIELDS if name in item})
