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
