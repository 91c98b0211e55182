"""The employee a search is for: looked up in the directory by id, or described by the caller."""

from __future__ import annotations

from datatorag.domain.applicability import normalise_country
from datatorag.domain.employees import Employee
from datatorag.ports import EmployeeDirectory


class EmployeeNotFound(LookupError):
    """No such employee in the tenant's directory: never answered as if unfiltered."""


def resolve_employee(
    directory: EmployeeDirectory,
    tenant: str,
    employee_id: str | None = None,
    *,
    country: str | None = None,
    region: str | None = None,
    employment_type: str | None = None,
    department: str | None = None,
) -> Employee:
    """The described employee when any attribute is given, else the directory's record of
    ``employee_id``, else an employee with nothing known (every policy applies, labelled).
    Raises ``EmployeeNotFound`` for an id the directory does not hold."""
    if country or region or employment_type or department:
        return Employee(
            id=employee_id or "",
            country=normalise_country(country),
            region=region.strip().upper() if region else None,
            employment_type=employment_type,
            department=department,
        )
    if not employee_id:
        return Employee(id="")
    found = directory.get(tenant, employee_id)
    if found is None:
        raise EmployeeNotFound(f"no employee {employee_id!r} in this tenant's directory")
    return found
