"""Logs never carry secrets, even in the traceback of an unexpected error, and several processes
writing one log file never tear or interleave its lines."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

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


WRITER = """
import logging, sys, threading
from datatorag.log import configure, get_logger

configure("worker")
records, size, me = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
log = get_logger("test")

def ours():
    for i in range(records):
        log.info("ours", pad=me * size, i=i)

def library():  # uvicorn's and botocore's records come through the stdlib's logging
    for i in range(records):
        logging.getLogger("uvicorn.error").warning("library %s", me * size)

threads = [threading.Thread(target=f) for f in (ours, library)]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def test_processes_sharing_one_log_file_write_only_whole_lines(tmp_path):
    # As `datatorag up` starts the API: one file opened for appending, inherited by its worker
    # processes. Records far over the 8 KiB stream buffer, from structlog and the stdlib at once.
    records, size, workers = 60, 20_000, "abcd"
    log_file = tmp_path / "query-api.log"
    with log_file.open("ab") as shared:
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(records), str(size), me], stderr=shared
            )
            for me in workers
        ]
        assert [p.wait(timeout=120) for p in processes] == [0] * len(workers)

    lines = log_file.read_bytes().split(b"\n")
    assert lines.pop() == b""  # the file ends with a whole line
    parsed = [json.loads(line) for line in lines]  # a torn or interleaved line fails here
    assert len(parsed) == 2 * records * len(workers)
    for record in parsed:
        text = record.get("pad") or record["event"].removeprefix("library ")
        assert len(text) == size and len(set(text)) == 1, "a line holds one record, whole"
