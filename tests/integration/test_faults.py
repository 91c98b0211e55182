"""Faults as tests: workers SIGKILLed again and again during an ingestion, and the whole stack
killed (``datatorag up``'s process group) and started again on the same data directory.

Either way every document ends indexed, none is lost and no chunk is duplicated. The source is a
folder of the shared corpus (38 real handbook pages), big enough that the kills land mid-way.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datatorag import wiring
from datatorag.adapters.queue.sqlite import DLQ_SUFFIX
from datatorag.domain.models import DocumentStatus
from datatorag.settings import Settings
from tests.integration.test_up import alive, pids, start_up, up_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TENANT = "qa-faults"
WORKERS = ("connector", "processor", "embedder-client")
KILLS_PER_WORKER = 3
# A message a killed worker held comes back soon (a live worker's heartbeat extends its own).
FAST_RECOVERY = {
    "DATATORAG_VISIBILITY_TIMEOUT_S": "10",
    "DATATORAG_POLL_WAIT_S": "0.2",
    "DATATORAG_CONNECTOR_INTERVAL_S": "2",
}


@pytest.fixture
def handbook(corpus_dir: Path) -> Path:
    return corpus_dir / "docs" / "18f"


def test_workers_killed_during_an_ingestion_lose_nothing(tmp_path: Path, handbook: Path) -> None:
    up, _ = start_up(tmp_path, **FAST_RECOVERY)
    try:
        settings = _settings(tmp_path)
        _register(settings, handbook)  # the connector fetches it: its kills land mid-sync too
        killed = {name: 0 for name in WORKERS}
        for _ in range(KILLS_PER_WORKER):
            for name in WORKERS:
                pid = _revived(tmp_path, name, up)
                time.sleep(1.5)  # let it take work in hand
                os.kill(pid, signal.SIGKILL)
                killed[name] += 1
        assert up.poll() is None, (tmp_path / "up.out").read_text()
        _assert_all_indexed_once(settings, handbook, timeout=420)
        assert killed == dict.fromkeys(WORKERS, KILLS_PER_WORKER)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)


def test_a_killed_stack_restarts_on_its_data_dir_and_loses_nothing(
    tmp_path: Path, handbook: Path
) -> None:
    up, _ = start_up(tmp_path, own_group=True, **FAST_RECOVERY)
    settings = _settings(tmp_path)
    try:
        services = pids(tmp_path)
        # A second `up` on the same data dir refuses, and leaves the running stack alone.
        second = subprocess.run(
            [sys.executable, "-m", "datatorag_cli.cli", "up"],
            env=up_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert second.returncode == 1 and "already running" in second.stderr, second.stderr
        assert pids(tmp_path) == services

        ingest = _cli(tmp_path, "ingest", str(handbook), "--tenant", TENANT)
        assert ingest.returncode == 0, ingest.stderr
        deadline = time.monotonic() + 300
        while not (done := _indexed(settings)):  # mid-way: some indexed, not all
            assert time.monotonic() < deadline, "nothing was indexed"
            time.sleep(0.2)
        os.killpg(up.pid, signal.SIGKILL)  # the supervisor and nothing else: its own group
        up.wait()
        assert len(done) < _file_count(handbook), "the kill came after the ingestion ended"

        deadline = time.monotonic() + 30
        while orphans := [n for n, pid in services.items() if alive(pid)]:
            assert time.monotonic() < deadline, f"services outlived their supervisor: {orphans}"
            time.sleep(0.2)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)

    again, _ = start_up(tmp_path, **FAST_RECOVERY)
    try:
        _assert_all_indexed_once(settings, handbook, timeout=420)
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=60)


def _settings(data_dir: Path) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir)


def _register(settings: Settings, folder: Path) -> None:
    from datatorag_connector.bootstrap import source_catalog

    source_catalog(settings).add(TENANT, folder.as_uri())


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATATORAG_DATA_DIR": str(data_dir)}
    datatorag = str(Path(sys.executable).parent / "datatorag")
    return subprocess.run(
        [datatorag, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _revived(data_dir: Path, name: str, up: subprocess.Popen[bytes]) -> int:
    """The pid of the service once it runs again (after a kill, up starts it within a second)."""
    deadline = time.monotonic() + 60
    while True:
        pid = pids(data_dir)[name]
        if alive(pid):
            return pid
        assert up.poll() is None, (data_dir / "up.out").read_text()
        assert time.monotonic() < deadline, f"{name} was not started again"
        time.sleep(0.2)


def _file_count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*.md"))


def _indexed(settings: Settings) -> list[str]:
    docs = wiring.search_index(settings).list_documents(TENANT, limit=10_000)
    return [d.doc_id for d in docs if d.status == DocumentStatus.INDEXED]


def _assert_all_indexed_once(settings: Settings, folder: Path, timeout: float) -> None:
    """Every file of the folder indexed, each with exactly its chunks: one per ordinal, all of
    the indexed version (a redelivered or replayed message added none)."""
    expected = _file_count(folder)
    index = wiring.search_index(settings)
    deadline = time.monotonic() + timeout
    while True:
        docs = index.list_documents(TENANT, limit=10_000)
        if len(docs) == expected and all(d.status == DocumentStatus.INDEXED for d in docs):
            break
        failed = [(d.source_uri, d.reason) for d in docs if d.status == DocumentStatus.FAILED]
        assert not failed, failed
        assert time.monotonic() < deadline, sorted((d.source_uri, d.status) for d in docs)
        time.sleep(1)
    with sqlite3.connect(settings.data_dir / "index" / f"{TENANT}.db") as db:
        for doc in docs:
            rows = db.execute(
                "SELECT chunk_id, ordinal FROM chunks WHERE doc_id = ?", (doc.doc_id,)
            ).fetchall()
            prefix = f"{doc.doc_id}:{doc.version[:12]}:"
            assert doc.chunk_count > 0 and len(rows) == doc.chunk_count, (doc.source_uri, rows)
            assert sorted(o for _, o in rows) == list(range(doc.chunk_count)), doc.source_uri
            assert all(c.startswith(prefix) for c, _ in rows), doc.source_uri
    dead = _dead_letters(settings)
    assert not dead, dead


def _dead_letters(settings: Settings) -> list[tuple[str, str]]:
    with sqlite3.connect(settings.data_dir / "queues.db") as db:
        return db.execute(
            "SELECT queue, body FROM messages WHERE queue LIKE ?", (f"%{DLQ_SUFFIX}",)
        ).fetchall()
