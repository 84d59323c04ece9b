"""Running the real roles as subprocesses, as an operator would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from agentbus.client import Client
from agentbus.security import keys
from agentbus.store import Repositories

TESTS = Path(__file__).resolve().parent.parent
"""tests/, where the roles import the tests' App from."""

FAST = {
    "AGENTBUS_RECONCILE_INTERVAL": "0.5",
    "AGENTBUS_RECONCILE_AFTER": "2",
    "AGENTBUS_HEARTBEAT_INTERVAL": "0.5",
    "AGENTBUS_WORKER_TTL": "2",
    "AGENTBUS_LEASE_TTL": "3",
    "AGENTBUS_METRICS_PORT": "0",  # several roles share this host: a test that scrapes picks free ports
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Cluster:
    """Starts roles the way an operator would: ``python -m agentbus run --role ...``."""

    def __init__(self, pg_url: str, redis_url: str, logs: Path) -> None:
        self.logs = logs
        self.port = free_port()
        self.env = {
            **os.environ,
            **FAST,
            "AGENTBUS_DATABASE_URL": pg_url,
            "AGENTBUS_REDIS_URL": redis_url,
            "AGENTBUS_API_URL": f"http://127.0.0.1:{self.port}",
            # the examples plus the tests' own fixtures (tests/fixture_app.py), importable by every role
            "AGENTBUS_APP": "fixture_app:app",
            "PYTHONPATH": os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.key = self.new_key("default")
        self.env["AGENTBUS_API_KEY"] = self.key
        self.client = Client(self.env["AGENTBUS_API_URL"], timeout=10, api_key=self.key)

    def new_key(self, tenant: str, scopes: tuple[str, ...] = keys.SCOPES, expires_in: float | None = None) -> str:
        store = Repositories.from_url(self.env["AGENTBUS_DATABASE_URL"])
        token, _ = store.keys.create_key(tenant, scopes, expires_in)
        store.close()
        return token

    def client_for(self, key: str | None) -> Client:
        return Client(self.env["AGENTBUS_API_URL"], timeout=10, api_key=key)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentbus", "run", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs[name] = proc
        return proc

    def api(self) -> None:
        self.start("api", "--role", "api", "--port", str(self.port))
        wait_until(self._healthy, 30, "the API to answer")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def orchestrator(self, name: str = "orch") -> subprocess.Popen[bytes]:
        return self.start(name, "--role", "orchestrator", "--name", name)

    def worker(self, name: str, queues: str = "cpu") -> subprocess.Popen[bytes]:
        return self.start(name, "--role", "worker-cpu", "--name", name, "--queues", queues)

    def gpu_worker(self, name: str, memory: str = "16GB") -> subprocess.Popen[bytes]:
        """A worker-gpu under numba's CUDA simulator, reporting ``memory`` of device memory."""
        proc = self.start(name, "--role", "worker-gpu", "--simulate-gpu", "--gpu-memory", memory, "--name", name)
        wait_until(
            lambda: any(w["id"] == name for w in self.client.workers()) if "api" in self.procs else True,
            60,
            f"{name} to heartbeat",
        )
        return proc

    def live(self, name: str) -> bool:
        return any(w["id"] == name and w["status"] == "live" for w in self.client.workers())

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        proc.wait(15)

    def wait(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        return self.client.wait(job_id, timeout=timeout)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.client.close()

    def log_tails(self) -> str:
        out = []
        for f in sorted(self.logs.glob("*.log")):
            lines = f.read_text(errors="replace").splitlines()[-30:]
            out.append(f"--- {f.name}\n" + "\n".join(lines))
        return "\n".join(out)
