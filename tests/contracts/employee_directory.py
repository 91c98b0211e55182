"""Behaviour every EmployeeDirectory adapter must show.

Subclass ``EmployeeDirectoryContract`` in a ``Test*`` class and provide an ``employee_directory``
fixture that returns an empty directory.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatorag.domain.employees import Employee
from datatorag.domain.errors import InvalidKey
from datatorag.ports import EmployeeDirectory

ADA = Employee(
    id="101",
    email="ada@example.com",
    country="GB",
    region="ENG",
    employment_type="full-time",
    department="Engineering",
    location="London",
)
BOB = Employee(id="102", country="US", region="CA")


class EmployeeDirectoryContract:
    def test_is_an_employee_directory(self, employee_directory: EmployeeDirectory) -> None:
        assert isinstance(employee_directory, EmployeeDirectory)

    def test_round_trip_with_every_field_and_with_few(
        self, employee_directory: EmployeeDirectory
    ) -> None:
        employee_directory.put("acme", ADA)
        employee_directory.put("acme", BOB)
        assert employee_directory.get("acme", "101") == ADA
        assert employee_directory.get("acme", "102") == BOB

    def test_unknown_employee(self, employee_directory: EmployeeDirectory) -> None:
        assert employee_directory.get("acme", "999") is None

    def test_tenants_stay_apart(self, employee_directory: EmployeeDirectory) -> None:
        employee_directory.put("acme", ADA)
        assert employee_directory.get("globex", "101") is None
        employee_directory.replace_all("globex", [BOB])
        assert employee_directory.get("acme", "101") == ADA

    def test_put_replaces_the_whole_record(self, employee_directory: EmployeeDirectory) -> None:
        employee_directory.put("acme", ADA)
        moved = Employee(id="101", country="US")
        employee_directory.put("acme", moved)
        assert employee_directory.get("acme", "101") == moved

    def test_remove(self, employee_directory: EmployeeDirectory) -> None:
        employee_directory.put("acme", ADA)
        employee_directory.remove("acme", "101")
        employee_directory.remove("acme", "101")
        assert employee_directory.get("acme", "101") is None

    def test_replace_all_drops_who_left(self, employee_directory: EmployeeDirectory) -> None:
        employee_directory.replace_all("acme", [ADA, BOB])
        carol = Employee(id="103", country="CA", employment_type="contractor")
        assert employee_directory.replace_all("acme", iter([BOB, carol])) == 2
        assert employee_directory.get("acme", "101") is None
        assert employee_directory.get("acme", "102") == BOB
        assert employee_directory.get("acme", "103") == carol

    def test_a_feed_that_fails_midway_changes_nothing(
        self, employee_directory: EmployeeDirectory
    ) -> None:
        employee_directory.replace_all("acme", [ADA, BOB])

        def broken() -> Iterator[Employee]:
            yield Employee(id="103")
            raise RuntimeError("page 2 was malformed")

        with pytest.raises(RuntimeError):
            employee_directory.replace_all("acme", broken())
        assert employee_directory.get("acme", "101") == ADA
        assert employee_directory.get("acme", "103") is None

    def test_many_employees(self, employee_directory: EmployeeDirectory) -> None:
        staff = [Employee(id=str(n), country="US") for n in range(230)]
        assert employee_directory.replace_all("acme", staff) == 230
        assert employee_directory.replace_all("acme", staff[:5]) == 5
        assert employee_directory.get("acme", "4") == staff[4]
        assert employee_directory.get("acme", "5") is None

    def test_invalid_tenant_is_refused(self, employee_directory: EmployeeDirectory) -> None:
        with pytest.raises(InvalidKey):
            employee_directory.put("../other", ADA)
        with pytest.raises(InvalidKey):
            employee_directory.get("Not A Tenant", "101")
