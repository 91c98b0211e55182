"""``datatorag ingest`` of a BambooHR account end to end: the real CLI, the whole stack on the
embedded default, the fake BambooHR on loopback, real corpus files.

A changed file is searchable within 30 s of the sync that sees it; a file unshared in BambooHR
leaves search at the next sync; the API key never reaches the CLI's output.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fixtures.hr_servers import FakeBambooHR
from tests.fixtures.stack import RunningStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TENANT = "bamboo"


def _search(stack: RunningStack, query: str) -> list[dict[str, object]]:
    with stack.client(TENANT) as api:
        response = api.post("/v1/search", json={"query": query, "top_k": 5, "mode": "keyword"})
        assert response.status_code == 200, response.text
        hits: list[dict[str, object]] = response.json()["hits"]
        return hits


def _titled(stack: RunningStack, query: str, title: str) -> bool:
    return any(hit["title"] == title for hit in _search(stack, query))


def _eventually(check: object, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if callable(check) and check():
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"not true within {timeout} s")


def test_ingest_a_bamboohr_account_then_a_changed_file_is_searchable_within_30s(
    running_stack: RunningStack, fake_bamboohr: FakeBambooHR, corpus_dir: Path
) -> None:
    benefits = (corpus_dir / "pdf/libreoffice/posthog/benefits.pdf").read_bytes()
    fake_bamboohr.add_file("Benefits", "PostHog benefits", "benefits.pdf", benefits)
    policy = fake_bamboohr.add_file(
        "Handbook", "Bicycle policy", "bicycles.md", b"# Bicycles\nRide to the office."
    )
    uri = f"bamboohr://{fake_bamboohr.api_key}@acme?api_base={fake_bamboohr.url}"

    first = running_stack.cli("ingest", uri, "--tenant", TENANT, "--wait", "--json")
    assert first.returncode == 0, first.stderr
    assert fake_bamboohr.api_key not in first.stdout + first.stderr
    assert '"added": 2' in first.stdout and '"indexed": 2' in first.stdout
    hits = _search(running_stack, "Royal London pension")
    assert hits and hits[0]["title"] == "PostHog benefits"

    policy.data = b"# Bicycles\nA cargo bike allowance of 900 euros a year."
    started = time.monotonic()
    second = running_stack.cli("ingest", uri, "--tenant", TENANT, "--json")
    assert second.returncode == 0, second.stderr
    assert '"changed": 1' in second.stdout
    _eventually(lambda: _titled(running_stack, "cargo bike", "Bicycle policy"), timeout=30)
    elapsed = time.monotonic() - started
    print(f"changed BambooHR file searchable {elapsed:.1f} s after the sync began")
    assert elapsed < 30

    policy.shared = False
    third = running_stack.cli("ingest", uri, "--tenant", TENANT, "--json")
    assert '"removed": 1' in third.stdout
    _eventually(lambda: not _titled(running_stack, "cargo bike", "Bicycle policy"), timeout=30)


def test_a_changed_file_is_searchable_within_30s_of_a_sync_request_through_the_api(
    running_stack: RunningStack, fake_bamboohr: FakeBambooHR
) -> None:
    """The issue's own measure: a source registered with POST /v1/sources, its file changed in
    BambooHR, POST /v1/sources/{id}/sync, and the new text found by search."""
    tenant = "bamboo-api"
    policy = fake_bamboohr.add_file(
        "Handbook", "Remote work", "remote.md", b"# Remote work\nWork from home on Fridays."
    )
    uri = f"bamboohr://{fake_bamboohr.api_key}@acme?api_base={fake_bamboohr.url}"
    with running_stack.client(tenant) as api:
        created = api.post("/v1/sources", json={"uri": uri})
        assert created.status_code == 201, created.text
        assert fake_bamboohr.api_key not in created.text  # write-only credentials
        source_id = created.json()["id"]

        def found(words: str) -> bool:
            body = {"query": words, "top_k": 5, "mode": "keyword"}
            hits = api.post("/v1/search", json=body).json()["hits"]
            return any(h["title"] == "Remote work" for h in hits)

        _eventually(lambda: found("Fridays"), timeout=60)  # the first scheduled sync
        policy.data = b"# Remote work\nA home office stipend of 400 euros."
        started = time.monotonic()
        assert api.post(f"/v1/sources/{source_id}/sync").status_code == 202
        _eventually(lambda: found("stipend"), timeout=30)
        elapsed = time.monotonic() - started
        print(f"changed file searchable {elapsed:.1f} s after POST /v1/sources/{{id}}/sync")
        assert elapsed < 30
        syncs = api.get(f"/v1/sources/{source_id}").json()["syncs"]
        assert any(s["trigger"] == "request" and s["modified"] == 1 for s in syncs), syncs
