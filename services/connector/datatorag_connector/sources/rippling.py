"""Rippling workers and work locations (``rippling://API_TOKEN@company``), for the directory only.

Rippling's REST API (https://developer.rippling.com/documentation/rest-api): base
``https://rest.ripplingapis.com``, ``Authorization: Bearer <API token>``; collections such as
``GET /workers`` and ``GET /work-locations`` answer ``{"results": [...], "next_link": URL|null}``
and are paged by cursor (``limit``, ``cursor``). A worker has ``id``, ``work_email``,
``status``, ``country``, ``location`` (``{"type": "WORK", "work_location_id"}`` or remote) and,
with ``expand=department,employment_type``, its ``department`` (``name``) and
``employment_type`` (``type``: EMPLOYEE or CONTRACTOR; ``amount_worked``: FULL-TIME, PART-TIME,
TEMPORARY). A work location has ``address`` with ``country`` and ``region``.

No documented Rippling API serves documents (policies, handbooks), so this source lists none:
it exists for ``employees()`` (the eligibility directory).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from datatorag.domain.employees import Employee
from datatorag.domain.errors import SourceError
from datatorag_connector.sources.applicability import country_code, employment_type, region_code
from datatorag_connector.sources.base import BaseSource, Listing, SourceFile
from datatorag_connector.sources.http import ApiUri, HttpApi

PAGE = 100
GONE = {"TERMINATED"}


class RipplingSource(BaseSource):
    vendor = "Rippling"

    def __init__(self, where: ApiUri, *, max_bytes: int, timeout: float) -> None:
        super().__init__(where.display_uri, max_bytes)
        token = where.require("the API token (rippling://TOKEN@company)", where.user)
        self.api = HttpApi(
            where.base_url("https://rest.ripplingapis.com"),
            vendor=self.vendor,
            display_uri=self.display_uri,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            secrets=(token,),
        )

    def listing(self) -> Listing:
        return Listing()  # no documented API serves Rippling documents

    def read(self, file: SourceFile) -> bytes:
        raise SourceError(f"{self.display_uri} holds no documents")

    def employees(self) -> Iterator[Employee]:
        places = {str(p.get("id")): p for p in self._collection("/work-locations", {})}
        expand = {"expand": "department,employment_type"}
        for worker in self._collection("/workers", expand):
            if worker.get("id") and str(worker.get("status") or "").upper() not in GONE:
                yield _employee(worker, places)

    def close(self) -> None:
        self.api.close()

    def _collection(self, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every item, page by page. Only the cursor of ``next_link`` is followed: the token is
        never sent to a host the answer names."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            query: dict[str, Any] = {**params, "limit": PAGE}
            if cursor:
                query["cursor"] = cursor
            page = self.api.json("GET", path, params=query)
            results = page.get("results") if isinstance(page, dict) else None
            if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
                raise SourceError(f"Rippling answered {path} without a results list")
            yield from results
            cursor = _cursor(page.get("next_link"))
            if not cursor or cursor in seen:
                return
            seen.add(cursor)


def _cursor(next_link: object) -> str | None:
    if not isinstance(next_link, str) or not next_link:
        return None
    values = parse_qs(urlsplit(next_link).query).get("cursor")
    return values[-1] if values else None


def _name(value: object) -> str | None:
    if isinstance(value, dict):
        value = value.get("name")
    return value.strip() if isinstance(value, str) and value.strip() else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _employee(worker: dict[str, Any], places: dict[str, dict[str, Any]]) -> Employee:
    location = _dict(worker.get("location"))
    place = places.get(str(location.get("work_location_id"))) or {}
    address = _dict(place.get("address"))
    country = country_code(address.get("country")) or country_code(worker.get("country"))
    kind = _dict(worker.get("employment_type"))
    contractor = str(kind.get("type") or "").upper() == "CONTRACTOR"
    return Employee(
        id=str(worker["id"]),
        email=_name(worker.get("work_email")),
        country=country,
        region=region_code(address.get("region"), country),
        employment_type="contractor" if contractor else employment_type(kind.get("amount_worked")),
        department=_name(worker.get("department")),
        location=_name(place) or (_name(location.get("type")) if location else None),
    )
