"""Workday, Rippling and ADP sources against their named fakes (tests/fixtures/hr_servers.py).

Workday: Help articles sync (paged, audience as applicability), update and prune; the OAuth
token is renewed when it expires or is refused, a rotated refresh token is kept; workers come
from the RaaS report. Rippling and ADP: workers, paged, minimised to ``Employee``; ADP over
mutual TLS. Every vendor: throttling waited out, malformed answers a clear failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from structlog.testing import capture_logs

from datatorag.adapters.blob.local import LocalBlobStore
from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.adapters.queue.sqlite import SqliteQueue
from datatorag.domain.employees import Employee
from datatorag.domain.errors import SourceError
from datatorag.domain.messages import DocumentFetched, decode
from datatorag.ports import EmployeeFeed
from datatorag_connector.sources import open_source
from datatorag_connector.sync import Syncer
from tests.fixtures.hr_servers import FakeADP, FakeRippling, FakeWorkday

pytestmark = pytest.mark.integration

TENANT = "acme"


@pytest.fixture
def syncer(tmp_path: Path) -> Syncer:
    options: dict[str, Any] = {"max_receives": 3, "visibility_timeout": 60}
    return Syncer(
        LocalBlobStore(tmp_path / "blobs"),
        SqliteSearchIndex(tmp_path / "index"),
        SqliteQueue(tmp_path / "q.db", "documents", **options),
        SqliteQueue(tmp_path / "q.db", "chunks", **options),
    )


def announced(syncer: Syncer) -> dict[str, DocumentFetched]:
    found = {}
    while batch := syncer.documents_queue.receive(max_messages=10):
        for message in batch:
            fetched = decode(message.body)
            assert isinstance(fetched, DocumentFetched)
            found[fetched.filename] = fetched
            syncer.documents_queue.delete(message.receipt)
    return found


def employees_of(uri: str) -> list[Employee]:
    with closing(open_source(uri)) as source:
        assert isinstance(source, EmployeeFeed)
        return list(source.employees())


# --- Workday


def article(article_id: str, version: int, title: str, html: str, *audience: str) -> dict[str, Any]:
    return {
        "id": f"{article_id}-v{version}",
        "descriptor": title,
        "article": {"id": article_id, "descriptor": title},
        "versionNumber": version,
        "title": title,
        "content": html,
        "audience": [{"id": a.lower(), "descriptor": a} for a in audience],
    }


@pytest.fixture
def workday(fake_workday: FakeWorkday) -> Iterator[FakeWorkday]:
    fake_workday.articles = [
        article("A1", 1, "UK pension", "<p>Royal London, 4%.</p>", "United Kingdom"),
        article("A1", 2, "UK pension", "<p>Royal London, 5%.</p>", "United Kingdom"),
        article("A2", 1, "401(k)", "<p>Vestwell, 4% match.</p>", "United States", "Full-Time"),
    ] + [article(f"B{i}", 1, f"Note {i}", f"<p>note {i}</p>") for i in range(120)]
    yield fake_workday


def test_workday_articles_sync_with_their_audience_as_applicability(
    syncer: Syncer, workday: FakeWorkday
) -> None:
    with closing(open_source(workday.uri())) as source:
        report = syncer.sync(source, TENANT)
    assert len(report.added) == 122  # the latest version of each article, over two pages
    pages = workday.api_requests("/ccx/api/help/v1/acme_impl/articleVersions")
    assert [r.query["offset"] for r in pages] == ["0", "100"]
    docs = announced(syncer)
    assert docs["A1.html"].metadata["countries"] == ["GB"]
    assert docs["A1.html"].metadata["title"] == "UK pension"
    assert docs["A2.html"].metadata["countries"] == ["US"]
    assert docs["A2.html"].metadata["employment_types"] == ["full-time"]
    assert "countries" not in docs["B1.html"].metadata
    blob = syncer.blobs.get(docs["A1.html"].blob_key)
    assert b"5%" in blob and b"<title>UK pension</title>" in blob


def test_workday_updates_and_prunes(syncer: Syncer, workday: FakeWorkday) -> None:
    with closing(open_source(workday.uri())) as source:
        syncer.sync(source, TENANT)
        workday.articles = [a for a in workday.articles if a["article"]["id"] != "B7"]
        workday.articles.append(article("A2", 2, "401(k)", "<p>Vestwell, 6%.</p>", "United States"))
        report = syncer.sync(source, TENANT)
    assert [u.rsplit("/", 1)[1] for u in report.removed] == ["B7.html"]
    assert [u.rsplit("/", 1)[1] for u in report.changed] == ["A2.html"]


def test_workday_token_is_renewed_when_it_expires_and_a_rotated_one_kept(
    syncer: Syncer, workday: FakeWorkday
) -> None:
    workday.rotate = True
    with closing(open_source(workday.uri())) as source:
        syncer.sync(source, TENANT)
        workday.tokens.expire_all()  # every access token issued so far is now refused
        report = syncer.sync(source, TENANT)
    assert len(report.unchanged) == 122
    token_calls = workday.api_requests("/ccx/oauth2/acme_impl/token")
    assert len(token_calls) == 2  # the first, and one renewal after the 401
    renewal = dict(parse_qsl(token_calls[1].body.decode()))
    assert renewal["refresh_token"] not in ("", "wd-refresh-1")  # the rotated one, not the first


def test_workday_throttling_is_waited_out_and_a_malformed_page_fails_clearly(
    syncer: Syncer, workday: FakeWorkday
) -> None:
    workday.throttle(2, status=429, retry_after="0")
    with closing(open_source(workday.uri())) as source:
        assert len(syncer.sync(source, TENANT).added) == 122
        workday.break_next(b'{"total": 3, "data": "oops"}')
        with pytest.raises(SourceError, match="without a data list"):
            syncer.sync(source, TENANT)


def test_workday_refused_client_is_a_clear_error_without_secrets(workday: FakeWorkday) -> None:
    uri = workday.uri().replace(workday.client_secret, "not-the-secret")
    with pytest.raises(SourceError) as raised, closing(open_source(uri)) as source:
        source.listing()
    assert "refused the credentials (401)" in str(raised.value)
    assert "not-the-secret" not in str(raised.value)


def test_workday_workers_come_from_the_raas_report(workday: FakeWorkday) -> None:
    workday.workers = [
        {
            "Employee_ID": "21001",
            "Email": "ann@acme.example",
            "Country": "GBR",
            "Region": "",
            "Worker_Type": "Employee",
            "Time_Type": "Part_time",
            "Department": "Finance",
            "Location": "London",
            "Base_Pay": "90000",
        },
        {"Employee_ID": "21002", "Country": "United States", "Region": "US-NY"},
    ]
    assert employees_of(workday.uri()) == [
        Employee("21001", "ann@acme.example", "GB", None, "part-time", "Finance", "London"),
        Employee("21002", None, "US", "NY"),
    ]
    (call,) = workday.api_requests("/ccx/service/customreport2/")
    assert call.query == {"format": "json"}


# --- Rippling


@pytest.fixture
def rippling(fake_rippling: FakeRippling) -> Iterator[FakeRippling]:
    fake_rippling.locations = [
        {"id": "loc-ldn", "name": "London", "address": {"country": "GB", "region": "LND"}},
        {"id": "loc-sf", "name": "San Francisco", "address": {"country": "US", "region": "CA"}},
    ]
    fake_rippling.departments = {"d1": {"id": "d1", "name": "Engineering"}}
    fake_rippling.employment_types = {
        "e1": {"id": "e1", "type": "EMPLOYEE", "amount_worked": "FULL-TIME"},
        "e2": {"id": "e2", "type": "CONTRACTOR", "amount_worked": "PART-TIME"},
    }
    fake_rippling.workers = [
        {
            "id": "w1",
            "work_email": "ann@acme.example",
            "status": "ACTIVE",
            "country": "GB",
            "location": {"type": "WORK", "work_location_id": "loc-ldn"},
            "department_id": "d1",
            "employment_type_id": "e1",
            "date_of_birth": "1990-01-01",
        },
        {
            "id": "w2",
            "status": "ACTIVE",
            "location": {"type": "WORK", "work_location_id": "loc-sf"},
            "employment_type_id": "e2",
        },
        {"id": "w3", "status": "TERMINATED", "country": "US"},
        {"id": "w4", "status": "ACTIVE", "country": "CA", "location": {"type": "REMOTE"}},
    ]
    yield fake_rippling


def test_rippling_workers_with_their_work_locations_over_cursor_pages(
    rippling: FakeRippling,
) -> None:
    assert employees_of(rippling.uri()) == [
        Employee("w1", "ann@acme.example", "GB", "LND", "full-time", "Engineering", "London"),
        Employee("w2", None, "US", "CA", "contractor", None, "San Francisco"),
        Employee("w4", None, "CA", None, None, None, "REMOTE"),
    ]
    cursors = [r.query.get("cursor") for r in rippling.api_requests("/workers")]
    assert cursors == [None, "2"]
    assert all(r.headers["authorization"] == f"Bearer {rippling.token}" for r in rippling.requests)


def test_rippling_lists_no_documents_and_survives_throttling(
    syncer: Syncer, rippling: FakeRippling
) -> None:
    with closing(open_source(rippling.uri())) as source:
        report = syncer.sync(source, TENANT)
    assert not report.added and not report.unreadable
    rippling.throttle(2, status=503)
    assert len(employees_of(rippling.uri())) == 3


def test_rippling_malformed_or_refused_answers_fail_clearly(rippling: FakeRippling) -> None:
    rippling.break_next(b'{"results": {"not": "a list"}}')
    with pytest.raises(SourceError, match="without a results list"):
        employees_of(rippling.uri())
    with pytest.raises(SourceError, match="refused the credentials"):
        employees_of(rippling.uri().replace(rippling.token, "bad-token"))


# --- ADP


def adp_worker(oid: str, country: str, region: str, kind: str, department: str) -> dict[str, Any]:
    return {
        "associateOID": oid,
        "workerID": {"idValue": oid[-4:]},
        "workerStatus": {"statusCode": {"codeValue": "Active"}},
        "person": {"legalName": {"givenName": "Not", "familyName1": "Stored"}},
        "businessCommunication": {"emails": [{"emailUri": f"{oid.lower()}@acme.example"}]},
        "workAssignments": [
            {
                "primaryIndicator": True,
                "workerTypeCode": {"codeValue": kind[0], "shortName": kind},
                "homeWorkLocation": {
                    "nameCode": {"codeValue": "HQ", "shortName": "Head office"},
                    "address": {
                        "countryCode": country,
                        "countrySubdivisionLevel1": {"codeValue": region},
                    },
                },
                "homeOrganizationalUnits": [
                    {
                        "nameCode": {"shortName": "Acme Inc"},
                        "typeCode": {"codeValue": "Business Unit"},
                    },
                    {
                        "nameCode": {"shortName": department},
                        "typeCode": {"codeValue": "Department"},
                    },
                ],
            }
        ],
    }


def test_adp_workers_paged_with_top_and_skip_over_mutual_tls(fake_adp: FakeADP) -> None:
    fake_adp.workers = [
        adp_worker(f"G3Q{i:05d}", "US", "NY", "Full Time", "Sales") for i in range(150)
    ] + [adp_worker("G3QCA0001", "CA", "ON", "Part Time", "Support")]
    found = employees_of(fake_adp.uri())
    assert len(found) == 151
    assert found[0] == Employee(
        "G3Q00000", "g3q00000@acme.example", "US", "NY", "full-time", "Sales", "Head office"
    )
    assert found[-1].country == "CA" and found[-1].employment_type == "part-time"
    skips = [r.query["$skip"] for r in fake_adp.api_requests("/hr/v2/workers")]
    assert skips == ["0", "100"]


def test_adp_token_renewed_after_expiry_and_throttling_waited_out(fake_adp: FakeADP) -> None:
    fake_adp.workers = [adp_worker("G3Q1", "US", "CA", "Full Time", "Sales")]
    with closing(open_source(fake_adp.uri())) as source:
        assert isinstance(source, EmployeeFeed)
        assert len(list(source.employees())) == 1
        fake_adp.tokens.expire_all()
        fake_adp.throttle(1, status=429, retry_after="0")
        assert len(list(source.employees())) == 1
    assert len(fake_adp.api_requests("/auth/oauth/v2/token")) == 2


def test_adp_refuses_to_run_without_a_client_certificate(fake_adp: FakeADP) -> None:
    uri = fake_adp.uri().split("&cert_file=")[0] + f"&ca_file={fake_adp.pki.ca_cert}"
    with pytest.raises(SourceError, match=r"\?cert_file=.* or set DATATORAG_ADP_CERT_FILE"):
        open_source(uri, environ={})


def test_adp_client_certificate_from_the_files_the_environment_names(fake_adp: FakeADP) -> None:
    # How the connector task on ECS gets it: written from its secret, named by the environment.
    fake_adp.workers = [adp_worker("G3Q1", "US", "CA", "Full Time", "Sales")]
    uri = fake_adp.uri().split("&cert_file=")[0] + f"&ca_file={fake_adp.pki.ca_cert}"
    env = {
        "DATATORAG_ADP_CERT_FILE": str(fake_adp.pki.client_cert),
        "DATATORAG_ADP_KEY_FILE": str(fake_adp.pki.client_key),
    }
    with closing(open_source(uri, environ=env)) as source:
        assert isinstance(source, EmployeeFeed)
        assert [e.id for e in source.employees()] == ["G3Q1"]
    # The URI's own files win over the environment's, as a pair.
    env["DATATORAG_ADP_CERT_FILE"] = env["DATATORAG_ADP_KEY_FILE"] = "/nonexistent"
    with closing(open_source(fake_adp.uri(), environ=env)) as source:
        assert len(list(source.employees())) == 1


def test_adp_tls_failures_are_clear_and_not_retried(fake_adp: FakeADP) -> None:
    untrusted = fake_adp.uri().split("&ca_file=")[0]  # the fake's CA is not trusted
    with capture_logs() as logs, pytest.raises(SourceError, match=r"TLS with ADP failed.*VERIFY"):
        open_source(untrusted)
    assert not [e for e in logs if e["event"] == "source.http_retry"]


def test_adp_that_ignores_skip_is_a_clear_failure_not_an_endless_loop(fake_adp: FakeADP) -> None:
    fake_adp.workers = [
        adp_worker(f"G3Q{i:05d}", "US", "NY", "Full Time", "Sales") for i in range(150)
    ]
    fake_adp.ignore_skip = True
    with pytest.raises(SourceError, match=r"same page of workers twice"):
        employees_of(fake_adp.uri())


def test_adp_malformed_answer_is_a_clear_failure(fake_adp: FakeADP) -> None:
    fake_adp.workers = [adp_worker("G3Q1", "US", "CA", "Full Time", "Sales")]
    fake_adp.break_next(b'{"workers": {"oops": 1}}')
    with pytest.raises(SourceError, match="without a workers list"):
        employees_of(fake_adp.uri())


def test_workday_audience_change_is_announced_again(syncer: Syncer, workday: FakeWorkday) -> None:
    with closing(open_source(workday.uri())) as source:
        syncer.sync(source, TENANT)
        announced(syncer)
        workday.articles[0]["audience"] = workday.articles[1]["audience"] = [
            {"id": "de", "descriptor": "Germany"}
        ]
        report = syncer.sync(source, TENANT)
    assert [u.rsplit("/", 1)[1] for u in report.changed] == ["A1.html"]
    assert announced(syncer)["A1.html"].metadata["countries"] == ["DE"]


def test_workday_audience_dropped_altogether_is_announced_again(
    syncer: Syncer, workday: FakeWorkday
) -> None:
    with closing(open_source(workday.uri())) as source:
        syncer.sync(source, TENANT)
        announced(syncer)
        workday.articles[0]["audience"] = workday.articles[1]["audience"] = []
        report = syncer.sync(source, TENANT)
    assert [u.rsplit("/", 1)[1] for u in report.changed] == ["A1.html"]
    assert "countries" not in announced(syncer)["A1.html"].metadata
