"""Workday Help knowledge articles, and workers from a Report-as-a-Service custom report.

``workday://CLIENT_ID:CLIENT_SECRET@HOST/TENANT?refresh_token=...&report=OWNER/REPORT``

- OAuth 2.0 refresh-token grant (RFC 6749 section 6) at the tenant's token endpoint
  ``https://HOST/ccx/oauth2/TENANT/token``, the API client's id and secret as HTTP Basic
  (Workday "Register API Client for Integrations"; the endpoint is shown on the client's page).
  A token that expires or is refused (401) is renewed; a rotated refresh token is kept.
- Articles: ``GET https://HOST/ccx/api/help/v1/TENANT/articleVersions?limit=&offset=`` in
  Workday's REST collection shape ``{"total": N, "data": [...]}`` (limit at most 100; Workday
  REST API directory, https://community.workday.com/sites/default/files/file-hosting/restapi/).
  Each version gives ``article`` ({"id"}), ``title``, ``content`` (HTML), ``audience``
  (descriptors of whom it is for) and ``versionNumber``; the latest version of each article is
  indexed, its HTML through the HTML extractor and its audience as applicability. Workday
  publishes the Help service's reference on Workday Community, behind a customer login: these
  field names follow its REST conventions and were not checked against that page.
- Workers: ``GET https://HOST/ccx/service/customreport2/TENANT/OWNER/REPORT?format=json``
  answers ``{"Report_Entry": [...]}`` with the report's column aliases as keys (Workday RaaS).
  Expected columns: ``Employee_ID``, ``Email``, ``Country``, ``Region``, ``Worker_Type``
  (or ``Time_Type``), ``Department``, ``Location``; others are ignored.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from datatorag.domain.employees import Employee
from datatorag.domain.errors import SourceError
from datatorag_connector.sources.applicability import (
    audience_metadata,
    country_code,
    employment_type,
    region_code,
)
from datatorag_connector.sources.base import (
    BaseSource,
    FileTooLarge,
    Listing,
    SourceFile,
    is_safe_name,
)
from datatorag_connector.sources.http import ApiUri, BearerToken, HttpApi, token_from

PAGE = 100  # Workday's largest page


class WorkdaySource(BaseSource):
    vendor = "Workday"

    def __init__(self, where: ApiUri, *, max_bytes: int, timeout: float) -> None:
        super().__init__(where.display_uri, max_bytes)
        self.tenant = where.require("the tenant (workday://id:secret@host/TENANT)", where.path[1:])
        client_id = where.require("the API client id", where.user)
        client_secret = where.require("the API client secret", where.password)
        self._refresh_token = where.require("?refresh_token=", where.option("refresh_token"))
        self.report = where.option("report")
        base = where.base_url(f"https://{where.name}")
        secrets = (client_id, client_secret, self._refresh_token)
        self._tokens = HttpApi(
            base,
            vendor=self.vendor,
            display_uri=self.display_uri,
            timeout=timeout,
            auth=httpx.BasicAuth(client_id, client_secret),
            secrets=secrets,
        )
        bearer = BearerToken(self._new_token)
        self.api = HttpApi(
            base,
            vendor=self.vendor,
            display_uri=self.display_uri,
            timeout=timeout,
            auth=bearer,
            headers={"Accept": "application/json"},
            secrets=secrets,
        )
        self._pages: dict[str, bytes] = {}  # SourceFile.path -> the article as an HTML page
        try:
            bearer.log_in()  # refused credentials show now, before the source is registered
        except SourceError:
            self.close()
            raise

    def listing(self) -> Listing:
        latest: dict[str, dict[str, Any]] = {}
        for version in self._collection(f"/ccx/api/help/v1/{quote(self.tenant)}/articleVersions"):
            article = version.get("article")
            article_id = str(article.get("id") if isinstance(article, dict) else version.get("id"))
            known = latest.get(article_id)
            if known is None or _number(version) >= _number(known):
                latest[article_id] = version
        found, self._pages = Listing(), {}
        for article_id, version in sorted(latest.items()):
            if not is_safe_name(article_id) or not isinstance(version.get("content"), str):
                continue
            listed = self._listed(article_id, version)
            found.files.append(listed)
        found.files.sort(key=lambda f: f.path)
        return found

    def read(self, file: SourceFile) -> bytes:
        page = self._pages.get(file.path)
        if page is None:
            raise SourceError(f"{self.uri_of(file)} was not in the last listing")
        if len(page) > self.max_bytes:
            raise FileTooLarge(f"{self.uri_of(file)} is over the limit of {self.max_bytes} bytes")
        return page

    def employees(self) -> Iterator[Employee]:
        report = self.report
        if not report or not all(is_safe_name(p) for p in report.split("/")):
            raise SourceError(f"{self.display_uri}: give ?report=OWNER/REPORT for the workers")
        path = f"/ccx/service/customreport2/{quote(self.tenant)}/{quote(report)}"
        payload = self.api.json("GET", path, params={"format": "json"})
        rows = payload.get("Report_Entry") if isinstance(payload, dict) else None
        if not isinstance(rows, list):
            raise SourceError(f"Workday's report {report} has no Report_Entry list")
        for row in rows:
            if isinstance(row, dict) and _first(row, "Employee_ID", "Worker_ID"):
                yield _employee(row)

    def close(self) -> None:
        self.api.close()
        self._tokens.close()

    def _collection(self, path: str) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.api.json("GET", path, params={"limit": PAGE, "offset": offset})
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
                raise SourceError(f"Workday answered {path} without a data list")
            yield from data
            offset += len(data)
            total = page.get("total")
            if not data or not isinstance(total, int) or offset >= total:
                return

    def _listed(self, article_id: str, version: dict[str, Any]) -> SourceFile:
        title = str(version.get("title") or version.get("descriptor") or article_id)
        audience = version.get("audience") or []
        names = [
            str(a.get("descriptor") if isinstance(a, dict) else a)
            for a in (audience if isinstance(audience, list) else [])
        ]
        names = [n for n in names if n and n != "None"]
        # The audience is in the page too, so that a changed audience is a changed version even
        # when it is dropped altogether (the sync compares only the metadata a source gives).
        page = (
            f"<html><head><title>{html.escape(title)}</title>"
            f'<meta name="audience" content="{html.escape("; ".join(names))}"></head>'
            f"<body>{version['content']}</body></html>"
        ).encode()
        path = f"{article_id}.html"
        self._pages[path] = page
        return SourceFile(
            path=path,
            size=len(page),
            modified=None,
            metadata={"title": title, **audience_metadata(names)},
        )

    def _new_token(self) -> tuple[str, float]:
        payload = self._tokens.json(
            "POST",
            f"/ccx/oauth2/{quote(self.tenant)}/token",
            data={"grant_type": "refresh_token", "refresh_token": self._refresh_token},
        )
        if isinstance(payload, dict) and isinstance(payload.get("refresh_token"), str):
            self._refresh_token = payload["refresh_token"]  # rotated (RFC 6749 section 6)
        return token_from(payload, self.vendor)


def _number(version: dict[str, Any]) -> float:
    value = version.get("versionNumber")
    return float(value) if isinstance(value, int | float) else 0.0


def _first(row: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = row.get(name)
        if isinstance(value, str | int) and str(value).strip():
            return str(value).strip()
    return None


def _employee(row: dict[str, Any]) -> Employee:
    country = country_code(_first(row, "Country", "Country_ISO_Code", "Work_Country"))
    return Employee(
        id=str(_first(row, "Employee_ID", "Worker_ID")),
        email=_first(row, "Email", "Work_Email", "Email_Address"),
        country=country,
        region=region_code(_first(row, "Region", "State", "Country_Region"), country),
        employment_type=next(
            (
                k
                for c in ("Worker_Type", "Time_Type", "Employee_Type")
                if (k := employment_type(row.get(c)))
            ),
            None,
        ),
        department=_first(row, "Department", "Supervisory_Organization", "Cost_Center"),
        location=_first(row, "Location", "Work_Location"),
    )
