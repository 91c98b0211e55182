"""Logs never carry secrets, even in the traceback of an unexpected error."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from datatorag.log import configure, get_logger

pytestmark = pytest.mark.unit


@pytest.fixture
def json_logs():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:], root.level = handlers, level


def test_a_traceback_keeps_no_frame_locals(json_logs, capsys):
    configure("test-service")
    log = get_logger("test")
    api_key = "dtr_abc_0123456789secret"  # a local of the failing frame, like a request's headers

    def fail(headers: dict[str, str]) -> None:
        raise RuntimeError("boom")

    try:
        fail({"x-api-key": api_key})
    except RuntimeError:
        log.exception("request.failed", path="/v1/search")

    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "request.failed" and record["service"] == "test-service"
    frames = record["exception"][0]["frames"]
    assert any(frame["name"] == "fail" for frame in frames)  # the traceback is still there
    assert api_key not in line
