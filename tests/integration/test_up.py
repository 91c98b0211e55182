"""``datatorag up``: the foreground stack stops all its services on SIGTERM, SIGHUP and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.stack import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_up_stops_every_service_when_it_is_stopped(tmp_path: Path, stop: signal.Signals) -> None:
    port, embedding_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATATORAG_DATA_DIR": str(tmp_path),
        "DATATORAG_PORT": str(port),
        "DATATORAG_EMBEDDING_PORT": str(embedding_port),
        "DATATORAG_EMBEDDING_URL": f"http://127.0.0.1:{embedding_port}",
        "HF_HUB_OFFLINE": "1",
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "datatorag.cli", "up"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # SIGINT as a terminal's Ctrl-C sends it; a background job would ignore it otherwise.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 180
        while not _ready(port):
            assert up.poll() is None, "datatorag up exited before the API was ready"
            assert time.monotonic() < deadline, "the API did not come up"
            time.sleep(0.5)
        services = json.loads((tmp_path / "stack.json").read_text()).values()
        up.send_signal(stop)
        assert up.wait(timeout=60) is not None
        deadline = time.monotonic() + 20
        while any(map(_alive, services)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in services if _alive(pid)], "services outlived datatorag up"
    finally:
        up.kill()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
