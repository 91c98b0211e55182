"""schemathesis, every check, against the running stack: the API does what its OpenAPI document
says, and nothing a generated request sends makes it fail.

Bounded so the run stays near a minute on two cores: a fixed seed, ``MAX_EXAMPLES`` cases per
operation and phase, one request timeout. Any finding fails the test, except those accepted in
``schemathesis.toml`` beside this file, each with its reason. The run's summary (cases,
findings, skips) is printed for the record (``pytest -s``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TENANT = "qa-schemathesis"
MAX_EXAMPLES = 30
SEED = 20261205
CONFIG = Path(__file__).with_name("schemathesis.toml")  # the accepted findings, with reasons


def test_the_api_conforms_to_its_openapi_document(running_stack, tmp_path: Path) -> None:
    report = tmp_path / "schemathesis.json"
    schemathesis = Path(sys.executable).parent / "schemathesis"
    command = [
        str(schemathesis),
        "--config-file",
        str(CONFIG),
        "run",
        f"{running_stack.url}/openapi.json",
        "--header",
        f"X-API-Key: {running_stack.key(TENANT)}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    print(result.stdout[-3000:])  # the run's summary: operations, cases, findings
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    cases = json.loads(report.read_text())["test_cases"]
    assert cases["generated"] > 200 and cases["with_failures"] == 0, cases
