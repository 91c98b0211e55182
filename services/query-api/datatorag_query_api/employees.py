"""The optional ``employee`` of ``/v1/search`` and ``/v1/query``: whom the answer is for."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from datatorag.domain.employees import Employee
from datatorag.ports import EmployeeDirectory
from datatorag.usecases.eligibility import EmployeeNotFound, resolve_employee
from datatorag_query_api.problems import Problem

EmploymentType = Literal["full-time", "part-time", "contractor", "intern"]


class EmployeeSpec(BaseModel):
    """``{"id": "..."}`` is looked up in the tenant's employee directory (404 when unknown);
    attributes describe the employee directly. Documents and sections whose stated
    applicability excludes the employee are left out; those that state none stay."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, min_length=1, max_length=256)
    country: str | None = Field(
        default=None, min_length=2, max_length=64, description='ISO 3166-1 alpha-2, e.g. "GB"'
    )
    region: str | None = Field(default=None, min_length=1, max_length=64, examples=["CA"])
    employment_type: EmploymentType | None = None
    department: str | None = Field(default=None, min_length=1, max_length=256)


def resolve(
    directory: EmployeeDirectory, tenant: str, spec: EmployeeSpec | None
) -> Employee | None:
    if spec is None:
        return None
    try:
        return resolve_employee(
            directory,
            tenant,
            spec.id,
            country=spec.country,
            region=spec.region,
            employment_type=spec.employment_type,
            department=spec.department,
        )
    except EmployeeNotFound as err:
        raise Problem(404, "Employee not found", str(err)) from err
    except ValueError as err:
        raise Problem(400, "Bad employee", str(err)) from err
