"""``datatorag up``: the foreground stack restarts a crashed service and stops all its services
on SIGTERM, SIGHUP and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.stack import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_up_stops_every_service_when_it_is_stopped(tmp_path: Path, stop: signal.Signals) -> None:
    up, _ = start_up(tmp_path)
    try:
        services = json.loads((tmp_path / "stack.json").read_text()).values()
        up.send_signal(stop)
        assert up.wait(timeout=60) is not None
        deadline = time.monotonic() + 20
        while any(map(alive, services)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in services if alive(pid)], "services outlived datatorag up"
    finally:
        up.kill()


def test_up_starts_a_crashed_service_again(tmp_path: Path) -> None:
    """A worker killed by a document (out of memory, say) used to stop the whole stack."""
    up, port = start_up(tmp_path)
    try:
        crashed = json.loads((tmp_path / "stack.json").read_text())["processor"]
        os.kill(crashed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (again := pids(tmp_path)["processor"]) == crashed or not alive(again):
            assert up.poll() is None, "datatorag up stopped when a service crashed"
            assert time.monotonic() < deadline, "the processor was not started again"
            time.sleep(0.2)
        assert up.poll() is None and ready(port)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)


def test_up_refuses_a_port_another_program_holds(tmp_path: Path) -> None:
    """It used to start anyway: the API crash-looped, or the services used another stack's
    model endpoint."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        for variable in ("DATATORAG_PORT", "DATATORAG_EMBEDDING_PORT"):
            env = {**up_env(tmp_path), variable: str(port)}
            result = subprocess.run(
                [sys.executable, "-m", "datatorag_cli.cli", "up"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 1, result.stderr
            assert f"port {port}" in result.stderr and variable in result.stderr
            assert not (tmp_path / "stack.json").exists()


def up_env(data_dir: Path, port: int | None = None) -> dict[str, str]:
    """The environment of a ``datatorag up`` on free ports (the embedding URL follows its port)."""
    env = {k: v for k, v in os.environ.items() if k != "DATATORAG_EMBEDDING_URL"}
    return {
        **env,
        "DATATORAG_DATA_DIR": str(data_dir),
        "DATATORAG_PORT": str(port or free_port()),
        "DATATORAG_EMBEDDING_PORT": str(free_port()),
        "HF_HUB_OFFLINE": "1",
    }


def start_up(
    data_dir: Path, *, own_group: bool = False, **extra: str
) -> tuple[subprocess.Popen[bytes], int]:
    """``datatorag up`` on free ports, once its API is ready; and the API's port.

    ``own_group``: in a process group of its own, which a test may SIGKILL whole.
    """
    port = free_port()
    output = data_dir / "up.out"
    env = {**up_env(data_dir, port), **extra}
    up = subprocess.Popen(
        [sys.executable, "-m", "datatorag_cli.cli", "up"],
        env=env,
        stdout=output.open("wb"),
        stderr=subprocess.STDOUT,
        # SIGINT as a terminal's Ctrl-C sends it; a background job would ignore it otherwise.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        process_group=0 if own_group else None,
    )
    deadline = time.monotonic() + 180
    # Its welcome line: from then on it watches the services (before, it waits on them).
    while "DatatoRAG is up" not in output.read_text() or not ready(port):
        if up.poll() is not None or time.monotonic() > deadline:
            up.kill()
            pytest.fail(f"datatorag up exited or did not come up: {output.read_text()}")
        time.sleep(0.5)
    return up, port


def pids(data_dir: Path) -> dict[str, int]:
    pids: dict[str, int] = json.loads((data_dir / "stack.json").read_text())
    return pids


def ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
