"""Runs the whole stack on one machine as processes: no Docker, no cloud.

Each service is ``python -m <package>`` with the caller's environment; its JSON log goes to
``<data_dir>/logs/<service>.log``. ``stack.json`` in the data directory records the pids so the
CLI can tell whether workers are running before it waits on them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from datatorag.domain.errors import DatatoRAGError
from datatorag.lifeline import PARENT_ENV
from datatorag.settings import Settings

SERVICES = {
    "embedding-endpoint": "datatorag_embedding_endpoint",
    "processor": "datatorag_processor",
    "embedder-client": "datatorag_embedder",
    "connector": "datatorag_connector",
    "query-api": "datatorag_query_api",
}


# A service that exits more often than this within the window is reported, not restarted again:
# it cannot stay up (a bad setting, a port in use), and restarting it forever would hide that.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 300.0


class StackError(DatatoRAGError):
    """A service of the stack could not start or kept exiting."""


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str] = field(default_factory=dict)  # extra DATATORAG_* for the services
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    exits: dict[str, list[float]] = field(default_factory=dict)  # when each service exited

    @property
    def state_file(self) -> Path:
        return self.settings.data_dir / "stack.json"

    def check_free(self) -> None:
        """Refuse, clearly, to start over a live stack of this data dir or on a taken port."""
        live = running_services(self.settings)
        if live:
            raise StackError(
                f"DatatoRAG is already running for {self.settings.data_dir.resolve()} "
                f"({', '.join(sorted(live))}): stop that one first"
            )
        ports = {
            "DATATORAG_PORT": (self.settings.host, self.settings.port),
            "DATATORAG_EMBEDDING_PORT": ("127.0.0.1", self.settings.embedding_port),
        }
        for variable, (host, port) in ports.items():
            if not _can_bind(host, port):
                raise StackError(
                    f"port {port} on {host} is in use by another program: "
                    f"stop it or choose another port with {variable}"
                )

    def start(self, services: list[str] | None = None) -> None:
        logs = self.settings.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "DATATORAG_DATA_DIR": str(self.settings.data_dir.resolve()),
            "DATATORAG_PORT": str(self.settings.port),
            "DATATORAG_EMBEDDING_PORT": str(self.settings.embedding_port),
            "DATATORAG_EMBEDDING_URL": self.settings.embedding_url,
            "HF_HUB_OFFLINE": "1",
            **self.env,
            PARENT_ENV: str(os.getpid()),  # the services end with this process (lifeline.py)
        }
        for name in services or list(SERVICES):
            with (logs / f"{name}.log").open("ab") as log_file:  # the child keeps its own copy
                self.processes[name] = subprocess.Popen(  # noqa: S603 - our own module, no shell
                    [sys.executable, "-m", SERVICES[name]],
                    env=env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        self.state_file.write_text(json.dumps({n: p.pid for n, p in self.processes.items()}))

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Until the embedding endpoint and the API answer (the model takes a few seconds)."""
        deadline = time.monotonic() + timeout
        urls = {
            "embedding-endpoint": f"{self.settings.embedding_url}/ping",
            "query-api": f"{self.settings.api_url}/readyz",
        }
        for name, url in urls.items():
            if name not in self.processes:
                continue
            while True:
                self.check_alive()
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise StackError(
                        f"{name} not ready after {timeout:.0f} s: see {self.log(name)}"
                    )
                time.sleep(0.3)

    def restart(self, name: str) -> None:
        """Kill a service outright (SIGKILL, as a crash would) and start it again."""
        proc = self.processes.pop(name)
        _kill_group(proc)
        self.start([name])

    def revive(self) -> list[str]:
        """Start again every service that exited, as ECS restarts a stopped task; their names.

        A worker that crashed on a document (out of memory, say) loses nothing: the message
        comes back and is dead-lettered after its attempts. ``StackError`` when one service
        exited more than ``MAX_RESTARTS`` times within ``RESTART_WINDOW_S``.
        """
        now = time.monotonic()
        revived = []
        for name, proc in list(self.processes.items()):
            if proc.poll() is None:
                continue
            recent = [t for t in self.exits.get(name, []) if now - t < RESTART_WINDOW_S]
            self.exits[name] = [*recent, now]
            if len(self.exits[name]) > MAX_RESTARTS:
                raise StackError(
                    f"{name} exited {len(self.exits[name])} times in {RESTART_WINDOW_S:.0f} s "
                    f"(last exit code {proc.returncode}): see {self.log(name)}"
                )
            self.start([name])
            revived.append(name)
        return revived

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise StackError(f"{name} exited with code {proc.returncode}: see {self.log(name)}")

    def log(self, name: str) -> Path:
        return self.settings.data_dir / "logs" / f"{name}.log"

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (workers finish the message in hand), then SIGKILL what is left."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(proc)
        self.processes.clear()
        self.state_file.unlink(missing_ok=True)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a service with its children (the API's worker processes): its own session."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _can_bind(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def running_services(settings: Settings) -> set[str]:
    """Services of the stack recorded in the data directory whose process is alive (and is that
    service: a recycled pid is not)."""
    state = settings.data_dir / "stack.json"
    if not state.exists():
        return set()
    alive = set()
    for name, pid in json.loads(state.read_text()).items():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if SERVICES[name].encode() in command:
            alive.add(name)
    return alive
