"""Shared by the benchmarks: a stack in a fresh data directory with the corpus ingested."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from datatorag.domain.models import DocumentRecord, DocumentStatus
from datatorag.settings import Settings
from datatorag_cli.stack import Stack

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_stack(data_dir: Path | None = None, **extra_env: str) -> Iterator[Stack]:
    """All services as processes on free ports; the caller's process uses the same settings."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="datatorag-bench-"))
    port, embedding_port = free_port(), free_port()
    env = {
        "DATATORAG_DATA_DIR": str(data_dir),
        "DATATORAG_PORT": str(port),
        "DATATORAG_EMBEDDING_PORT": str(embedding_port),
        "DATATORAG_EMBEDDING_URL": f"http://127.0.0.1:{embedding_port}",
        "DATATORAG_POLL_WAIT_S": "0.2",
        "DATATORAG_CONNECTOR_INTERVAL_S": "36000",
        **extra_env,
    }
    os.environ.update(env)
    stack = Stack(Settings(_env_file=None), env=env)  # type: ignore[call-arg]
    stack.start()
    try:
        stack.wait_ready(timeout=300)
        yield stack
    finally:
        stack.stop()


def ingest(
    settings: Settings, source_uri: Path | str, tenant: str
) -> tuple[list[DocumentRecord], float]:
    """Sync a folder (or any source URI) into the tenant; wait until every document is indexed
    or failed."""
    from datatorag import wiring
    from datatorag_connector.bootstrap import build_syncer
    from datatorag_connector.sources import open_source

    started = time.perf_counter()
    source = open_source(str(source_uri))
    report = build_syncer(settings).sync(source, tenant)
    index = wiring.search_index(settings)
    done = {DocumentStatus.INDEXED, DocumentStatus.FAILED}
    finished: dict[str, DocumentRecord] = {}
    pending = list(report.doc_ids)
    while pending:
        # Documents finish roughly in announcement order: re-read only the unfinished ones and
        # stop at the first of them still in flight, so that polling a thousand documents does
        # not take CPU from the pipeline it measures.
        while pending:
            doc = index.get_document(tenant, pending[0])
            if doc is None or doc.status not in done:
                break
            finished[doc.doc_id] = doc
            pending.pop(0)
        if pending:
            time.sleep(0.2)
    return [finished[d] for d in report.doc_ids], time.perf_counter() - started


def manifest_id(source_uri: str) -> str:
    """`.../pdf/<producer>/<source>/<name>.pdf` -> `<source>/<name>` (the corpus's doc ids)."""
    parts = source_uri.rsplit("/", 2)
    return f"{parts[-2]}/{parts[-1].rsplit('.', 1)[0]}"


def questions(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
