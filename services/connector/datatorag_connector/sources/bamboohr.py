"""BambooHR company files (``bamboohr://API_KEY@company``), and the company's employees.

BambooHR's API reference (https://documentation.bamboohr.com/reference, and the official SDK's
``docs/CompanyFilesApi.md`` at https://github.com/BambooHR/bhr-api-python):

- ``GET /api/v1/files/view`` with ``Accept: application/json`` lists the categories and the
  files in each the caller may see: ``{"categories": [{"id", "name", "files": [{"id", "name",
  "originalFileName", "size", "dateCreated", "shareWithEmployees": "yes"|"no"}]}]}``;
- ``GET /api/v1/files/{fileId}`` answers the file's bytes;
- ``POST /api/v1/reports/custom?format=JSON&onlyCurrent=true`` with ``{"fields": [...]}``
  answers ``{"fields": [...], "employees": [{"id", <field>: value}]}`` (Request Custom Report);
- the host is ``https://{company}.bamboohr.com``; an API key goes as the HTTP Basic user with
  any password (https://documentation.bamboohr.com/docs/getting-started#authentication), an
  OAuth access token as ``?access_token=`` (a Bearer token);
- throttled requests get 503 and, from September 2026, 429 with ``Retry-After``.

Only files shared with employees are indexed (what an employee could open in BambooHR), unless
the URI says ``?shared_only=no``. Each file's category becomes a tag and its name the title.
A file that is deleted or no longer shared drops out of the listing, so the sync removes it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Generator, Iterator
from datetime import datetime

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datatorag.domain.employees import Employee
from datatorag.domain.errors import SourceError
from datatorag.domain.media import is_supported
from datatorag.log import get_logger
from datatorag_connector.sources.applicability import country_code, employment_type, region_code
from datatorag_connector.sources.base import (
    BaseSource,
    FileTooLarge,
    Listing,
    SourceFile,
    is_safe_name,
)
from datatorag_connector.sources.http import ApiUri, HttpApi

log = get_logger(__name__)

# The documented fields the directory needs, and no more (data minimisation). BambooHR's
# standard fields hold the country and state of the employee's address; ``location`` is the
# work location's name.
EMPLOYEE_FIELDS = (
    "workEmail",
    "country",
    "state",
    "employmentHistoryStatus",
    "department",
    "location",
)


class _File(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    id: int | str
    name: str = ""
    original_file_name: str = Field("", alias="originalFileName")
    size: int | str = 0
    date_created: str | None = Field(None, alias="dateCreated")
    share_with_employees: str = Field("no", alias="shareWithEmployees")


class _Category(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int | str | None = None
    name: str = ""
    files: list[_File] = Field(default_factory=list)


class _FileListing(BaseModel):
    model_config = ConfigDict(extra="ignore")
    categories: list[_Category]


class BambooHRSource(BaseSource):
    vendor = "BambooHR"

    def __init__(self, where: ApiUri, *, max_bytes: int, timeout: float) -> None:
        super().__init__(where.display_uri, max_bytes)
        token = where.option("access_token")
        auth: httpx.Auth
        if token:
            auth = _Bearer(token)
        else:
            key = where.require("the API key (bamboohr://API_KEY@company)", where.user)
            auth = httpx.BasicAuth(key, where.password or "x")
        self.shared_only = where.flag("shared_only", default=True)
        self.api = HttpApi(
            where.base_url(f"https://{where.name}.bamboohr.com"),
            vendor=self.vendor,
            display_uri=self.display_uri,
            timeout=timeout,
            auth=auth,
            headers={"Accept": "application/json"},
            secrets=(where.user, where.password, token),
        )
        self._ids: dict[str, str] = {}  # SourceFile.path -> BambooHR file id

    def listing(self) -> Listing:
        payload = self.api.json("GET", "/api/v1/files/view")
        try:
            categories = _FileListing.model_validate(payload).categories
        except ValidationError as err:
            raise SourceError(
                f"BambooHR answered the file listing in an unexpected shape ({self.display_uri}):"
                f" {err.errors()[0]['msg']} at {err.errors()[0]['loc']}"
            ) from None
        found, self._ids = Listing(), {}
        for category in categories:
            for file in category.files:
                if self.shared_only and file.share_with_employees.lower() != "yes":
                    continue
                listed = self._listed(category, file)
                if listed is not None:
                    found.files.append(listed)
                    self._ids[listed.path] = str(file.id)
        found.files.sort(key=lambda f: f.path)
        return found

    def read(self, file: SourceFile) -> bytes:
        self._check_size(file, file.size)
        file_id = self._ids.get(file.path) or file.path.split("/", 1)[0]
        return self.api.download(
            f"/api/v1/files/{file_id}",
            max_bytes=self.max_bytes,
            too_large=lambda: FileTooLarge(
                f"{self.uri_of(file)} is over the limit of {self.max_bytes} bytes"
            ),
        )

    def employees(self) -> Iterator[Employee]:
        payload = self.api.json(
            "POST",
            "/api/v1/reports/custom",
            params={"format": "JSON", "onlyCurrent": "true"},
            json={"title": "DatatoRAG directory", "fields": list(EMPLOYEE_FIELDS)},
        )
        rows = payload.get("employees") if isinstance(payload, dict) else None
        if not isinstance(rows, list):
            raise SourceError(
                f"BambooHR's custom report has no employees list ({self.display_uri})"
            )
        for row in rows:
            if isinstance(row, dict) and row.get("id") not in (None, ""):
                yield _employee(row)

    def close(self) -> None:
        self.api.close()

    def _listed(self, category: _Category, file: _File) -> SourceFile | None:
        name = posixpath.basename(file.original_file_name or file.name)
        if not is_supported(name):
            return None
        if not is_safe_name(str(file.id)):
            log.warning("source.unsafe_name", source=self.display_uri, name=repr(file.id))
            return None
        if not is_safe_name(name):
            name = "file" + posixpath.splitext(name)[1].lower()
        try:
            size = int(file.size)
        except ValueError:
            size = 0
        metadata: dict[str, object] = {"title": file.name or posixpath.splitext(name)[0]}
        if category.name.strip():
            metadata["tags"] = [category.name.strip()]
        # The id keeps the path (so the document) the same when the file is renamed.
        return SourceFile(
            path=f"{file.id}/{name}",
            size=size,
            modified=_timestamp(file.date_created),
            metadata=metadata,
        )


def _employee(row: dict[str, object]) -> Employee:
    country = country_code(row.get("country"))
    return Employee(
        id=str(row["id"]),
        email=_text(row.get("workEmail")),
        country=country,
        region=region_code(row.get("state"), country),
        employment_type=employment_type(row.get("employmentHistoryStatus")),
        department=_text(row.get("department")),
        location=_text(row.get("location")),
    )


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _timestamp(value: str | None) -> datetime | None:
    """``2025-02-11T22:30:07+0000`` (the documented form) or ISO 8601; None otherwise."""
    if not value:
        return None
    for parse in (datetime.fromisoformat, lambda v: datetime.strptime(v, "%Y-%m-%dT%H:%M:%S%z")):
        try:
            return parse(value)
        except ValueError:
            continue
    return None


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request
