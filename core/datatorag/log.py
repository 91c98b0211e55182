"""Structured JSON logs (structlog) for every service.

Bind ``request_id`` / ``doc_id`` / ``tenant`` with ``structlog.contextvars`` so every line of a
request or a document carries them. Never log secrets or document text at info level.

Each record reaches standard error as one ``write(2)`` of its whole line. Several processes share
one log file (the API's workers, ``datatorag up``'s ``logs/query-api.log``): on a file opened
for appending, the kernel places each write whole at the end, so lines never interleave. Python's
own streams do not guarantee it: ``print`` writes the text and its newline separately, a line
past the 8 KiB buffer goes out in pieces, and structlog and the stdlib handler each held a lock
of their own. On a pipe only writes of up to PIPE_BUF (4 KiB) are atomic: processes sharing one
(the API's two workers under docker compose) may still interleave longer lines there; ECS runs
one API process per task.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import sys
from typing import TextIO

import structlog


class LineWriter:
    """Writes whole lines to a file descriptor, each with one ``os.write``."""

    def __init__(self, stream: TextIO) -> None:
        stream.flush()  # what Python buffered before goes first
        self.stream = stream
        try:
            self.fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):  # an in-memory stream (tests' capsys)
            self.fd = None
            return
        if stat.S_ISREG(os.fstat(self.fd).st_mode):  # e.g. a shell's `2> api.log`
            flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
            fcntl.fcntl(self.fd, fcntl.F_SETFL, flags | os.O_APPEND)

    def line(self, text: str) -> None:
        if self.fd is None:
            self.stream.write(text + "\n")
            self.stream.flush()
            return
        data = memoryview((text + "\n").encode("utf-8", "backslashreplace"))
        while data:  # a short write happens only on a full disk or pipe interrupted by a signal
            data = data[os.write(self.fd, data) :]


class _StructlogLines:
    """structlog's logger: every level writes the rendered line."""

    def __init__(self, writer: LineWriter) -> None:
        self._writer = writer

    def msg(self, message: str) -> None:
        self._writer.line(message)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


class _LineHandler(logging.Handler):
    """The stdlib's records (uvicorn, botocore, ...), formatted, one write each."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.line(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def configure(service: str, level: str | None = None) -> None:
    level_name = (level or os.environ.get("DATATORAG_LOG_LEVEL", "INFO")).upper()
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Libraries' stdlib logging (uvicorn, botocore, ...) comes out as the same JSON lines.
    writer = LineWriter(sys.stderr)
    handler = _LineHandler(writer)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(),
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_name)
    structlog.configure(
        processors=[
            *shared,
            # Tracebacks as data, without frame locals: those hold request headers (API keys),
            # source URIs with passwords and document text.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level_name)),
        logger_factory=lambda *_: _StructlogLines(writer),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
