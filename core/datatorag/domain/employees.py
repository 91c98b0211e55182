"""The employee asking: the few HR facts that decide which policy applies to them.

Data minimisation: these fields and nothing more are ever stored for an employee (no name, no
salary, no manager). Countries are ISO 3166-1 alpha-2 codes in upper case ("US", "GB"); regions are
the state or province code within that country ("CA", "NY", "ON"); employment types use the
processor's vocabulary ("full-time", "part-time", "contractor", "intern").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Employee:
    id: str  # the HR system's own worker id
    email: str | None = None
    country: str | None = None
    region: str | None = None
    employment_type: str | None = None
    department: str | None = None
    location: str | None = None
