"""The HR sources' rules that need no server: URIs, what is shown of them, Retry-After, the
applicability vocabulary, and how per-file metadata meets a source's registered metadata."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from datatorag.domain.errors import SourceError
from datatorag_connector.sources import redact_uri, source_id_of, uri_secrets
from datatorag_connector.sources.applicability import (
    audience_metadata,
    country_code,
    employment_type,
    region_code,
)
from datatorag_connector.sources.http import parse_api_uri, retry_after
from datatorag_connector.sync import merge_metadata

pytestmark = pytest.mark.unit


def test_api_uri_parts_and_display_without_credentials() -> None:
    where = parse_api_uri("bamboohr://k%40y:pw@Acme?api_base=http://127.0.0.1:9000/&shared_only=no")
    assert (where.scheme, where.name, where.user, where.password) == (
        "bamboohr",
        "acme",
        "k@y",
        "pw",
    )
    assert where.display_uri == "bamboohr://acme"
    assert where.base_url("https://acme.bamboohr.com") == "http://127.0.0.1:9000"
    assert where.flag("shared_only", default=True) is False
    assert "k@y" not in repr(where) and "pw" not in repr(where)
    with pytest.raises(SourceError, match="yes or no"):
        parse_api_uri("bamboohr://k@acme?shared_only=maybe").flag("shared_only")


def test_the_source_id_does_not_depend_on_credentials_or_api_base() -> None:
    one = source_id_of("bamboohr://key-one@acme")
    assert one == source_id_of("bamboohr://key-two@acme?api_base=http://127.0.0.1:1")
    assert one != source_id_of("bamboohr://key-one@other")
    assert source_id_of("s3://b/hr/?queue=q") == source_id_of("s3://b/hr")


def test_every_secret_a_uri_holds_is_found_for_scrubbing() -> None:
    uri = (
        "workday://client:s3cret@host/t?refresh_token=r3fresh&report=o/r&api_base=http://x"
        "&access_token=t0ken"
    )
    assert sorted(uri_secrets(uri)) == ["client", "r3fresh", "s3cret", "t0ken"]
    shown = redact_uri(uri)
    assert not any(s in shown for s in ("s3cret", "r3fresh", "t0ken"))


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("100000", 120.0),  # capped: the next attempt will be told again
        ("Sat, 05 Dec 2026 12:00:10 GMT", 10.0),
        ("Sat, 05 Dec 2026 11:00:00 GMT", 0.0),  # in the past
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    header: str | None, seconds: float | None
) -> None:
    now = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
    assert retry_after(header, now) == seconds


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("United Kingdom", "GB"),
        ("gbr", "GB"),
        ("US", "US"),
        ("UK", "GB"),
        ("Narnia", None),
        ("", None),
    ],
)
def test_country_codes(value: str, code: str | None) -> None:
    assert country_code(value) == code


def test_region_codes_within_their_country() -> None:
    assert region_code("California", "US") == "CA"
    assert region_code("US-NY", "US") == "NY"
    assert region_code("ON", "CA") == "ON"
    assert region_code("Atlantis", "US") is None


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("Full-Time", "full-time"),
        ("Part_time", "part-time"),
        ("Contingent Worker", "contractor"),
        ("Intern", "intern"),
        ("PT", "part-time"),
        ("Employee", None),
    ],
)
def test_employment_types(value: str, kind: str | None) -> None:
    assert employment_type(value) == kind


def test_an_audience_becomes_countries_kinds_and_tags() -> None:
    assert audience_metadata(["United Kingdom", "Part-Time", "Sales", "Germany"]) == {
        "countries": ["DE", "GB"],
        "employment_types": ["part-time"],
        "tags": ["Sales"],
    }
    assert audience_metadata([]) == {}


def test_file_metadata_wins_and_tags_add_up() -> None:
    merged = merge_metadata(
        {"country": "US", "tags": ["handbook"]}, {"countries": ["GB"], "tags": ["Benefits"]}
    )
    assert merged == {"country": "US", "countries": ["GB"], "tags": ["Benefits", "handbook"]}
    assert merge_metadata({}, {}) == {}
