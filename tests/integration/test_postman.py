"""The Postman collection in docs/postman, run by newman (npm) against the running stack.

The collection is generated from the OpenAPI document (scripts/postman_collection.py); the test
regenerates it from the running API first, so the committed one cannot drift from the API.
newman is installed once into ``.cache/newman`` (a pinned version, from npm).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
POSTMAN = REPO / "docs" / "postman"
COLLECTION = POSTMAN / "datatorag.postman_collection.json"
NEWMAN_VERSION = "6.2.2"
NEWMAN_PREFIX = REPO / ".cache" / "newman"


@pytest.fixture(scope="session")
def newman() -> Path:
    binary = NEWMAN_PREFIX / "node_modules" / ".bin" / "newman"
    if not binary.exists():
        npm = shutil.which("npm")
        assert npm, "npm (Node.js) is needed to install newman"
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(NEWMAN_PREFIX),
                "--no-audit",
                "--no-fund",
                f"newman@{NEWMAN_VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return binary


def test_the_collection_is_generated_from_the_api_and_runs_green(
    running_stack, newman: Path, tmp_path: Path
) -> None:
    generated = tmp_path / "collection.json"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "postman_collection.py"),
            f"{running_stack.url}/openapi.json",
            "--out",
            str(generated),
        ],
        check=True,
        timeout=60,
    )
    assert json.loads(generated.read_text()) == json.loads(COLLECTION.read_text()), (
        "docs/postman is out of date: run scripts/postman_collection.py against the API"
    )
    report = tmp_path / "newman.json"
    result = subprocess.run(
        [
            str(newman),
            "run",
            str(COLLECTION),
            "--env-var",
            f"baseUrl={running_stack.url}",
            "--env-var",
            f"apiKey={running_stack.key('qa-postman')}",
            "--working-dir",
            str(POSTMAN),
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report),
            "--color",
            "off",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    stats = json.loads(report.read_text())["run"]["stats"]
    assert stats["requests"]["failed"] == 0 and stats["assertions"]["failed"] == 0, stats
    requests = sum(len(folder["item"]) for folder in json.loads(COLLECTION.read_text())["item"])
    assert stats["requests"]["total"] == requests and stats["assertions"]["total"] >= 17, stats
