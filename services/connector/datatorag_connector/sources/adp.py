"""ADP Workforce Now workers, for the directory only.

``adp://CLIENT_ID:CLIENT_SECRET@company?cert_file=/path/client.pem&key_file=/path/client.key``

Without ``?cert_file=`` the client certificate and key are the files named by
``DATATORAG_ADP_CERT_FILE`` and ``DATATORAG_ADP_KEY_FILE`` (on ECS the connector task writes
them from its secret, as it writes the SFTP key).

ADP's API Central documentation (https://developers.adp.com: "Authorization process for Data
Connector apps", https://developers.adp.com/articles/guides/auth-process-data-connector-apps,
and the HR Workers v2 reference): every call is over mutual TLS with the certificate ADP signed
for the client; an access token comes from the OAuth 2.0 client-credentials grant at
``https://accounts.adp.com/auth/oauth/v2/token`` (client id and secret as HTTP Basic, the
parameters form-encoded in the body), and goes
as ``Authorization: Bearer``. ``GET https://api.adp.com/hr/v2/workers?$top=N&$skip=M`` pages
the workers (``{"workers": [...]}``; 204 No Content past the last one). A worker has
``associateOID``, ``businessCommunication.emails[].emailUri`` and ``workAssignments[]`` with
``primaryIndicator``, ``workerTypeCode``, ``homeWorkLocation`` (``nameCode``, ``address``
``countryCode`` and ``countrySubdivisionLevel1.codeValue``) and ``homeOrganizationalUnits``
(the one whose ``typeCode.codeValue`` is "Department"). ``?ca_file=`` trusts another CA.

ADP serves no documents through this API: the source lists none.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx

from datatorag.domain.employees import Employee
from datatorag.domain.errors import SourceError
from datatorag_connector.sources.applicability import country_code, employment_type, region_code
from datatorag_connector.sources.base import BaseSource, Listing, SourceFile
from datatorag_connector.sources.http import ApiUri, BearerToken, HttpApi, token_from

PAGE = 100
GONE = {"terminated", "inactive"}


class AdpSource(BaseSource):
    vendor = "ADP"

    def __init__(
        self,
        where: ApiUri,
        *,
        max_bytes: int,
        timeout: float,
        cert_file: str | None = None,
        key_file: str | None = None,
    ) -> None:
        """``cert_file``/``key_file``: the client certificate when the URI names none."""
        super().__init__(where.display_uri, max_bytes)
        client_id = where.require("the client id (adp://ID:SECRET@company)", where.user)
        client_secret = where.require("the client secret", where.password)
        tls = _mutual_tls(where, cert_file, key_file)
        common: dict[str, Any] = {
            "vendor": self.vendor,
            "display_uri": self.display_uri,
            "timeout": timeout,
            "verify": tls,
            "secrets": (client_id, client_secret),
        }
        self._tokens = HttpApi(
            where.base_url("https://accounts.adp.com"),
            auth=httpx.BasicAuth(client_id, client_secret),
            **common,
        )
        bearer = BearerToken(self._new_token)
        self.api = HttpApi(
            where.base_url("https://api.adp.com"),
            auth=bearer,
            headers={"Accept": "application/json"},
            **common,
        )
        try:
            bearer.log_in()  # refused credentials show now, before the source is registered
        except SourceError:
            self.close()
            raise

    def listing(self) -> Listing:
        return Listing()  # ADP's HR API serves no policy documents

    def read(self, file: SourceFile) -> bytes:
        raise SourceError(f"{self.display_uri} holds no documents")

    def employees(self) -> Iterator[Employee]:
        skip, previous = 0, None
        while True:
            response = self.api.send("GET", "/hr/v2/workers", params={"$top": PAGE, "$skip": skip})
            if response.status_code == 204 or not response.content:
                return
            payload = self.api.decode(response, "/hr/v2/workers")
            workers = payload.get("workers") if isinstance(payload, dict) else None
            if not isinstance(workers, list) or not all(isinstance(w, dict) for w in workers):
                raise SourceError("ADP answered /hr/v2/workers without a workers list")
            first = workers[0].get("associateOID") if workers else None
            if first is not None and first == previous:  # $skip ignored: never loop forever
                raise SourceError("ADP answered the same page of workers twice ($skip ignored)")
            previous = first
            for worker in workers:
                if worker.get("associateOID") and _status(worker) not in GONE:
                    yield _employee(worker)
            if len(workers) < PAGE:
                return
            skip += len(workers)

    def close(self) -> None:
        self.api.close()
        self._tokens.close()

    def _new_token(self) -> tuple[str, float]:
        payload = self._tokens.json(
            "POST", "/auth/oauth/v2/token", data={"grant_type": "client_credentials"}
        )
        return token_from(payload, self.vendor)


def _mutual_tls(where: ApiUri, cert_file: str | None, key_file: str | None) -> ssl.SSLContext:
    # The URI's files win as a pair: its certificate may hold its key, never the default's.
    if where.option("cert_file"):
        cert_file, key_file = where.option("cert_file"), where.option("key_file")
    if not cert_file:
        raise SourceError(
            f"{where.display_uri}: ADP's calls need the client certificate: give ?cert_file= "
            "(and ?key_file=) or set DATATORAG_ADP_CERT_FILE (and DATATORAG_ADP_KEY_FILE)"
        )
    try:
        context = ssl.create_default_context(cafile=where.option("ca_file"))
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as err:
        raise SourceError(f"{where.display_uri}: cannot load the TLS certificates: {err}") from None
    return context


def _get(value: Any, *path: str) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _status(worker: dict[str, Any]) -> str:
    return str(_get(worker, "workerStatus", "statusCode", "codeValue") or "").lower()


def _employee(worker: dict[str, Any]) -> Employee:
    assignments = [a for a in worker.get("workAssignments") or [] if isinstance(a, dict)]
    primary = next((a for a in assignments if a.get("primaryIndicator")), None)
    work = primary or (assignments[0] if assignments else {})
    place = _get(work, "homeWorkLocation") or {}
    country = country_code(_get(place, "address", "countryCode"))
    units = [u for u in work.get("homeOrganizationalUnits") or [] if isinstance(u, dict)]
    department = next(
        (u for u in units if str(_get(u, "typeCode", "codeValue")).lower() == "department"), None
    )
    emails = _get(worker, "businessCommunication", "emails") or []
    email = next((e.get("emailUri") for e in emails if isinstance(e, dict)), None)
    kind = _get(work, "workerTypeCode")
    return Employee(
        id=str(worker["associateOID"]),
        email=email if isinstance(email, str) else None,
        country=country,
        region=region_code(
            _get(place, "address", "countrySubdivisionLevel1", "codeValue"), country
        ),
        employment_type=employment_type(_get(kind, "shortName"))
        or employment_type(_get(kind, "codeValue")),
        department=_label(_get(department, "nameCode")),
        location=_label(_get(place, "nameCode")),
    )


def _label(code: Any) -> str | None:
    for key in ("shortName", "longName", "codeValue"):
        value = _get(code, key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None
