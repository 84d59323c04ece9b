"""Starting agentbus roles as processes for the benchmarks."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psycopg2


def fresh_database(admin_url: str, name: str) -> str:
    u = urlparse(admin_url)
    conn = psycopg2.connect(
        host=u.hostname,
        port=u.port or 5432,
        user=u.username,
        password=u.password,
        dbname=u.path.lstrip("/") or "postgres",
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return u._replace(path=f"/{name}").geturl()


class Roles:
    """agentbus processes sharing one environment; logs under ``logs``."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        env.setdefault("AGENTBUS_METRICS_PORT", "0")  # several roles on one host: no shared metrics port
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        logs.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "agentbus", "migrate"], env=env, check=True, capture_output=True)
        from agentbus.security import keys
        from agentbus.store import Repositories

        repos = Repositories.from_url(env["AGENTBUS_DATABASE_URL"])
        self.key, _ = repos.keys.create_key("bench", keys.SCOPES)
        repos.close()
        self.headers = {"Authorization": f"Bearer {self.key}"}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentbus", "run", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs[name] = proc
        return proc

    def api(self, port: int) -> None:
        self.start("api", "--role", "api", "--port", str(port))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the API did not come up")

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait()

    def stop(self) -> None:
        for p in self.procs.values():
            p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()
