"""The README's main command: `agentbus dev` on embedded defaults (SQLite + embedded Redis)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from agentbus.client import Client

from _cluster import free_port, wait_until

pytestmark = pytest.mark.e2e


def test_dev_runs_every_role_without_system_services_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTBUS_")}
    log = open(tmp_path / "dev.log", "wb")  # noqa: SIM115
    dev = subprocess.Popen(
        [sys.executable, "-m", "agentbus", "dev", "--port", str(port), "--workers", "1", "--data-dir", "state"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, 60, "agentbus dev to answer")
        children = psutil.Process(dev.pid).children(recursive=True)
        assert len(children) >= 3  # api, orchestrator, worker (and the embedded redis-server)

        def printed_key() -> re.Match[str] | None:
            return re.search(
                r"ab_[0-9a-f]{12}_[A-Za-z0-9_-]{32,64}", (tmp_path / "dev.log").read_text(errors="replace")
            )

        key = wait_until(printed_key, 30, "agentbus dev to print a development API key")
        with Client(f"http://127.0.0.1:{port}", api_key=key.group(0)) as client:
            job = client.submit("map_reduce", {"n": 10})
            assert client.wait(job["id"], timeout=60)["result"] == {"n": 10, "sum": 285}
        assert (tmp_path / "state" / "agentbus.db").exists()
        dev.send_signal(signal.SIGINT)
        assert dev.wait(30) == 0
        _, alive = psutil.wait_procs(children, timeout=15)
        assert alive == []
    finally:
        if dev.poll() is None:
            dev.kill()
        log.close()
        print((tmp_path / "dev.log").read_text(errors="replace")[-3000:])
