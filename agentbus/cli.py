"""The one command: ``agentbus run --role ...``, ``dev``, ``migrate`` and the HTTP client commands."""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentbus.client import Client
from agentbus.config import Settings
from agentbus.domain import AgentbusError, App, ConfigError

cli = typer.Typer(help="agentbus: a durable job bus for AI-agent workloads.", no_args_is_help=True,
                  pretty_exceptions_enable=False)  # fmt: skip
jobs_cli = typer.Typer(help="Inspect and cancel jobs.", no_args_is_help=True)
cli.add_typer(jobs_cli, name="jobs")
keys_cli = typer.Typer(help="API keys (talks to the database directly: run where AGENTBUS_DATABASE_URL points).",
                       no_args_is_help=True)  # fmt: skip
cli.add_typer(keys_cli, name="keys")
approvals_cli = typer.Typer(help="Questions agents put to people: list, show, approve, reject.", no_args_is_help=True)
cli.add_typer(approvals_cli, name="approvals")
out = Console()
err = Console(stderr=True)


class Role(StrEnum):
    api = "api"
    orchestrator = "orchestrator"
    worker_cpu = "worker-cpu"
    worker_gpu = "worker-gpu"


def load_app(spec: str) -> App:
    """``module:attr`` → the App it names."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--app must look like module:attr, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r} for --app: {exc}") from None
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise ConfigError(f"{spec!r} is not an agentbus App")
    return app


def _settings(**overrides: Any) -> Settings:
    return Settings.from_env(**overrides)


@cli.command()
def run(
    role: Annotated[Role, typer.Option(help="which service to run")],
    app: Annotated[str | None, typer.Option(help="module:attr of your App [env AGENTBUS_APP]")] = None,
    host: Annotated[str, typer.Option(help="api: address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="api: port")] = 8000,
    queues: Annotated[str | None, typer.Option(help="workers: comma-separated queues to serve")] = None,
    name: Annotated[str | None, typer.Option(help="workers, orchestrator: a stable name")] = None,
    burst: Annotated[bool, typer.Option(help="workers: exit when the queues are empty")] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(help="workers: calls in flight per process [env AGENTBUS_WORKER_CONCURRENCY; 100 cpu, 1 gpu]"),
    ] = None,
    gpus: Annotated[str | None, typer.Option(help="worker-gpu: one process per GPU index, e.g. 0,1")] = None,
    simulate_gpu: Annotated[
        bool, typer.Option(help="worker-gpu: run GPU tasks under numba's CUDA simulator (no GPU needed)")
    ] = False,
    gpu_memory: Annotated[str, typer.Option(help="worker-gpu --simulate-gpu: the simulated device's memory")] = "16GB",
    name_suffix: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    """Start one service."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = _settings(app=app, worker_concurrency=concurrency)
    if role == Role.worker_gpu and simulate_gpu:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba is imported, here or in the App
    the_app = load_app(settings.app)
    if role == Role.api:
        from agentbus.api import run_api

        run_api(settings, the_app, host, port)
        return
    if role == Role.orchestrator:
        from agentbus.orchestrator import run_orchestrator

        run_orchestrator(settings, the_app, name=name)
        return
    from agentbus.worker import run_worker_role

    listed = [q.strip() for q in (queues or "").split(",") if q.strip()]
    if name and name_suffix:
        name = f"{name}-{name_suffix}"
    if role == Role.worker_cpu:
        run_worker_role(settings, the_app, role.value, listed or ["cpu"], name=name, burst=burst)
        return
    from agentbus.domain.app import parse_bytes
    from agentbus.worker import gpu

    if gpus:
        argv = [a for a in sys.argv[1:]]
        i = argv.index("--gpus") if "--gpus" in argv else -1
        argv = argv[:i] + argv[i + 2 :] if i >= 0 else [a for a in argv if not a.startswith("--gpus=")]
        raise typer.Exit(gpu.supervise([g.strip() for g in gpus.split(",") if g.strip()], argv))
    device = gpu.detect(parse_bytes(gpu_memory))
    run_worker_role(settings, the_app, role.value, listed or gpu.targets_for(device), name=name, burst=burst,
                    device=device)  # fmt: skip


@cli.command()
def migrate() -> None:
    """Create or upgrade the schema (idempotent)."""
    from agentbus.store import Store

    settings = _settings()
    store = Store.from_url(settings.database_url)
    applied = store.migrate()
    store.close()
    out.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@cli.command()
def dev(
    port: Annotated[int, typer.Option(help="API port")] = 8000,
    workers: Annotated[int, typer.Option(help="CPU worker processes")] = 2,
    data_dir: Annotated[str, typer.Option(help="where the SQLite file and embedded Redis live")] = ".agentbus",
    app: Annotated[str | None, typer.Option(help="module:attr of your App")] = None,
) -> None:
    """Run every role on this machine: SQLite + embedded Redis unless AGENTBUS_*_URL say otherwise."""
    from agentbus.devmode import run_dev

    raise typer.Exit(run_dev(port=port, workers=workers, data_dir=data_dir, app=app))


def _client() -> Client:
    settings = _settings()
    return Client(settings.api_url, api_key=settings.api_key or None)


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value))


@cli.command()
def submit(
    type: Annotated[str, typer.Argument(help="job type: an agent or task name")],
    input: Annotated[str, typer.Option("--input", "-i", help="the input as a JSON object")] = "{}",
    idempotency_key: Annotated[str | None, typer.Option(help="submit at most once per key")] = None,
    priority: Annotated[int, typer.Option(help="-10..10, higher runs first")] = 0,
    wait: Annotated[bool, typer.Option(help="show progress and print the result")] = False,
    timeout: Annotated[float, typer.Option(help="--wait: give up after this many seconds")] = 600.0,
) -> None:
    """Submit a job."""
    try:
        data = json.loads(input)
    except ValueError as exc:
        err.print(f"[red]--input is not JSON:[/] {exc}")
        raise typer.Exit(2) from None
    with _client() as c:
        job = c.submit(type, data, idempotency_key=idempotency_key, priority=priority)
        if not wait:
            _print_json(job)
            return
        err.print(f"job [bold]{job['id']}[/] submitted")
        result = _follow(c, job["id"], timeout)
        _print_json(result)
        if result["status"] != "succeeded":
            raise typer.Exit(1)


def _follow(c: Client, job_id: str, timeout: float) -> dict[str, Any]:
    """Follow the job's event stream with a progress bar; return its results."""
    states: dict[str, str] = {}
    asked: set[str] = set()
    terminal = {"succeeded", "failed", "cancelled"}
    deadline = time.monotonic() + timeout
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err) as bar:  # fmt: skip
        t = bar.add_task("submitted", total=None)
        for _, event, data in c.events(job_id):
            if event == "task":
                states[data["id"]] = data["state"]
            elif event == "job":
                bar.update(t, description=data["status"])
            elif event == "approval" and data["status"] == "pending" and data["id"] not in asked:
                asked.add(data["id"])
                who = ", ".join(data["assignees"]) or "anyone"
                bar.console.print(f"[yellow]waiting for a person[/] ({who}): {data['prompt']}\n"
                                  f"  agentbus approvals approve {data['id']}   (or: reject)")  # fmt: skip
            done = sum(1 for v in states.values() if v in terminal)
            bar.update(t, completed=done, total=len(states) or None)
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout}s")
    return c.wait(job_id, timeout=max(1.0, deadline - time.monotonic()))


@cli.command("workers")
def workers() -> None:
    """The fleet: every worker, its device, what it runs."""
    with _client() as c:
        rows = c.workers()
    table = Table("id", "status", "role", "device", "serves", "slots busy/free", "running", "done", "failed")
    for w in rows:
        d = w.get("device") or {}
        device = "cpu" if d.get("kind") != "gpu" else f"{d.get('name')} ({int(d.get('memory_total', 0)) / 2**30:g} GB)"
        names = sorted({str(c.get("name")) for c in w.get("calls") or []})
        table.add_row(
            str(w.get("id")), w["status"], str(w.get("role")), device, ", ".join(w.get("targets", [])),
            f"{w.get('busy', '')}/{w.get('free', '')}", ", ".join(names[:3]) + (" ..." if len(names) > 3 else ""),
            str(w.get("done", "")), str(w.get("failed", "")),
        )  # fmt: skip
    out.print(table)


@cli.command("types")
def job_types() -> None:
    """List the job types the API knows, with their input schemas."""
    with _client() as c:
        table = Table("name", "kind", "input")
        for t in c.job_types():
            props = t["input_schema"].get("properties", {})
            table.add_row(t["name"], t["kind"], ", ".join(f"{k}: {v.get('type', '?')}" for k, v in props.items()))
        out.print(table)


@jobs_cli.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option(help="comma-separated states")] = None,
    type: Annotated[str | None, typer.Option(help="job type")] = None,
    limit: Annotated[int, typer.Option(help="page size (1-200)")] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page")] = None,
) -> None:
    with _client() as c:
        page = c.jobs(status=status, type=type, limit=limit, cursor=cursor)
    table = Table("id", "type", "status", "created", "finished")
    for j in page["jobs"]:
        table.add_row(j["id"], j["type"], j["status"], j["created_at"], j["finished_at"] or "")
    out.print(table)
    if page["next_cursor"]:
        out.print(f"next page: --cursor {page['next_cursor']}")


@jobs_cli.command("show")
def jobs_show(job_id: str) -> None:
    with _client() as c:
        _print_json(c.job(job_id))


@jobs_cli.command("results")
def jobs_results(job_id: str) -> None:
    with _client() as c:
        done, body = c.results(job_id)
    _print_json(body)
    if not done:
        raise typer.Exit(3)


@jobs_cli.command("cancel")
def jobs_cancel(job_id: str) -> None:
    with _client() as c:
        _print_json(c.cancel(job_id))


@approvals_cli.command("list")
def approvals_list(
    status: Annotated[str | None, typer.Option(help="pending, approved, rejected, expired, cancelled")] = "pending",
    job: Annotated[str | None, typer.Option(help="only this job's")] = None,
    assignee: Annotated[str | None, typer.Option(help="only those assigned to this name")] = None,
    limit: Annotated[int, typer.Option(help="page size (1-200)")] = 20,
) -> None:
    with _client() as c:
        page = c.approvals(status=status, job=job, assignee=assignee, limit=limit)
    table = Table("id", "status", "prompt", "assignees", "deadline")
    for a in page["approvals"]:
        table.add_row(a["id"], a["status"], a["prompt"], ", ".join(a["assignees"]), a["deadline"] or "")
    out.print(table)


@approvals_cli.command("show")
def approvals_show(approval_id: str) -> None:
    with _client() as c:
        _print_json(c.approval(approval_id))


def _answer(approval_id: str, decision: str, input: str | None, comment: str | None, by: str | None) -> None:
    try:
        value = None if input is None else json.loads(input)
    except ValueError as exc:
        err.print(f"[red]--input is not JSON:[/] {exc}")
        raise typer.Exit(2) from None
    with _client() as c:
        _print_json(c.answer(approval_id, decision, input=value, comment=comment, by=by))


@approvals_cli.command("approve")
def approvals_approve(
    approval_id: str,
    input: Annotated[str | None, typer.Option("--input", "-i", help="JSON the agent asked for")] = None,
    comment: Annotated[str | None, typer.Option(help="a note for the agent")] = None,
    by: Annotated[str | None, typer.Option(help="who answers")] = None,
) -> None:
    _answer(approval_id, "approve", input, comment, by)


@approvals_cli.command("reject")
def approvals_reject(
    approval_id: str,
    comment: Annotated[str | None, typer.Option(help="why, or what to change")] = None,
    by: Annotated[str | None, typer.Option(help="who answers")] = None,
) -> None:
    _answer(approval_id, "reject", None, comment, by)


def _store() -> Any:
    from agentbus.store import Store

    return Store.from_url(_settings().database_url)


@keys_cli.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="the tenant the key acts for")],
    scopes: Annotated[
        str, typer.Option(help="comma-separated: jobs:read,jobs:write,approvals:write,memory:read,memory:write,admin")
    ] = "jobs:read,jobs:write,approvals:write,memory:read,memory:write",
    expires: Annotated[str | None, typer.Option(help="lifetime, e.g. 30d, 12h")] = None,
    name: Annotated[str | None, typer.Option(help="a label")] = None,
) -> None:
    """Create a key and print it once: only its hash is stored."""
    from agentbus.security import keys

    store = _store()
    token, rec = store.create_key(
        keys.check_tenant(tenant), keys.parse_scopes(scopes), keys.parse_duration(expires) if expires else None, name
    )
    store.close()
    err.print(f"key {rec.id} for tenant [bold]{rec.tenant}[/] ({', '.join(rec.scopes)}); shown once:")
    print(token)


@keys_cli.command("list")
def keys_list(tenant: Annotated[str | None, typer.Option(help="only this tenant's")] = None) -> None:
    store = _store()
    rows = store.list_keys(tenant)
    store.close()
    table = Table("id", "prefix", "tenant", "scopes", "name", "expires", "revoked")
    for k in rows:
        expires = time.strftime("%Y-%m-%d %H:%M", time.gmtime(k.expires_at)) if k.expires_at else ""
        table.add_row(
            k.id, k.prefix, k.tenant, ",".join(k.scopes), k.name or "", expires, "yes" if k.revoked_at else ""
        )
    out.print(table)


@keys_cli.command("revoke")
def keys_revoke(key_id: str) -> None:
    store = _store()
    rec = store.revoke_key(key_id)
    store.close()
    out.print(f"key {rec.id} ({rec.prefix}) revoked; API replicas stop accepting it within 5 s")


def main() -> None:
    try:
        cli()
    except AgentbusError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        sys.exit(2)
