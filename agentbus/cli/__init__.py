"""The one command: ``agentbus run --role ...``, ``dev``, ``migrate`` and the HTTP client commands."""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentbus import __version__
from agentbus.cli._ids import answer_hint, resolve_approval, resolve_job, unique
from agentbus.cli._output import (
    EXIT_CODES,
    ExitCode,
    InputOption,
    Output,
    OutputOption,
    duration,
    exit_code,
    id_table,
    print_json,
    read_input,
    when,
)
from agentbus.cli._schedules import schedules_cli
from agentbus.client import Client, JobResult, schema
from agentbus.client.records import TERMINAL
from agentbus.config import Settings
from agentbus.config.reference import option_help
from agentbus.domain import AgentbusError, App, ConfigError, ValidationFailed

__all__ = ["cli", "main"]

cli = typer.Typer(
    help="agentbus: a durable job bus for AI-agent workloads.", no_args_is_help=True, pretty_exceptions_enable=False
)
jobs_cli = typer.Typer(help="Inspect, cancel, rerun, resume and signal jobs.", no_args_is_help=True)
cli.add_typer(jobs_cli, name="jobs")
keys_cli = typer.Typer(
    help="API keys (talks to the database directly: run where AGENTBUS_DATABASE_URL points).", no_args_is_help=True
)
cli.add_typer(keys_cli, name="keys")
approvals_cli = typer.Typer(help="Questions agents put to people: list, show, approve, reject.", no_args_is_help=True)
cli.add_typer(approvals_cli, name="approvals")
out = Console()
err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        print(f"agentbus {__version__}")
        raise typer.Exit()


@cli.callback(epilog=EXIT_CODES)
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """agentbus: a durable job bus for AI-agent workloads."""


class Role(StrEnum):
    api = "api"
    orchestrator = "orchestrator"
    worker_cpu = "worker-cpu"
    worker_gpu = "worker-gpu"


LogLevelOption = Annotated[str | None, typer.Option(help=option_help("log_level", "debug, info, warning, error"))]
LogFormatOption = Annotated[str | None, typer.Option(help=option_help("log_format", "text or json lines"))]


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
    app: Annotated[str | None, typer.Option(help=option_help("app", "module:attr of your App"))] = None,
    host: Annotated[str, typer.Option(help="api: address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="api: port")] = 8000,
    queues: Annotated[str | None, typer.Option(help="workers: comma-separated queues to serve")] = None,
    name: Annotated[str | None, typer.Option(help="workers, orchestrator: a stable name")] = None,
    burst: Annotated[bool, typer.Option(help="workers: exit when the queues are empty")] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(help=option_help("worker_concurrency", "workers: calls in flight per process", "100 cpu, 1 gpu")),
    ] = None,
    gpus: Annotated[str | None, typer.Option(help="worker-gpu: one process per GPU index, e.g. 0,1")] = None,
    simulate_gpu: Annotated[
        bool, typer.Option(help="worker-gpu: run GPU tasks under numba's CUDA simulator (no GPU needed)")
    ] = False,
    gpu_memory: Annotated[str, typer.Option(help="worker-gpu --simulate-gpu: the simulated device's memory")] = "16GB",
    name_suffix: Annotated[str | None, typer.Option(hidden=True)] = None,
    shards: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=option_help(
                "shards",
                "control-stream partitions, each with a lease: orchestrators share them out; "
                "every role of a deployment needs the same value (docs/scaling.md)",
            ),
        ),
    ] = None,
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help=option_help("metrics_port", "/metrics here, /healthz and /readyz (not on the api); 0: none")),
    ] = None,
) -> None:
    """Start one service."""
    level, fmt = (v.lower() if v else None for v in (log_level, log_format))
    settings = _settings(
        app=app,
        worker_concurrency=concurrency,
        metrics_port=metrics_port,
        log_level=level,
        log_format=fmt,
        shards=shards,
    )
    from agentbus.observability import configure_logging, metrics, tracing

    configure_logging(role.value, settings.log_level, settings.log_format)
    tracing.configure_tracing(role.value, settings.tracing)
    metrics.for_role(role.value)
    if settings.metrics_port == 0:
        metrics.disable()
    if role == Role.worker_gpu and simulate_gpu:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba is imported, here or in the App
    the_app = load_app(settings.app)
    if role == Role.api:
        from agentbus.api import run_api

        _freeze_startup_heap()
        run_api(settings, the_app, host, port)
        return
    if role == Role.orchestrator:
        from agentbus.orchestrator import run_orchestrator

        _freeze_startup_heap()
        run_orchestrator(settings, the_app, name=name)
        return
    from agentbus.worker import run_worker_role

    _freeze_startup_heap()

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
        raise typer.Exit(gpu.supervise([g.strip() for g in gpus.split(",") if g.strip()], argv, settings.metrics_port))
    device = gpu.detect(parse_bytes(gpu_memory))
    run_worker_role(
        settings, the_app, role.value, listed or gpu.targets_for(device), name=name, burst=burst, device=device
    )


def _freeze_startup_heap() -> None:
    """Leave what start-up imported and built out of later garbage collections, and collect less often.

    A role's heap is mostly modules, classes and functions that live as long as the process, and
    each full (oldest-generation) collection walked all of them: under 32 clients the API spent
    ~13 % of its CPU in the collector, with pauses of 10 ms and more (docs/benchmarks.md, seventh
    pass). ``gc.freeze`` moves them to a permanent generation that collections skip (they are never
    garbage, so nothing leaks). A young collection every 10,000 net allocations, not 700: almost
    everything a request allocates is freed by its reference count before then, so fewer passes
    find the same cycles and walk fewer live objects.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


@cli.command()
def migrate() -> None:
    """Create or upgrade the schema (idempotent)."""
    from agentbus.store import Repositories

    settings = _settings()
    repos = Repositories.from_url(settings.database_url)
    applied = repos.migrate()
    repos.close()
    out.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@cli.command()
def dev(
    port: Annotated[int, typer.Option(help="API port")] = 8000,
    workers: Annotated[int, typer.Option(help="CPU worker processes")] = 2,
    data_dir: Annotated[str, typer.Option(help="where the SQLite file and embedded Redis live")] = ".agentbus",
    app: Annotated[str | None, typer.Option(help="module:attr of your App")] = None,
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
    metrics_port: Annotated[
        int, typer.Option(help="first of the roles' metrics ports (api, orchestrator, workers: one each); 0: none")
    ] = 0,
) -> None:
    """Run every role on this machine: SQLite + embedded Redis unless AGENTBUS_*_URL say otherwise."""
    from agentbus.devmode import run_dev

    logs = {"AGENTBUS_LOG_LEVEL": log_level, "AGENTBUS_LOG_FORMAT": log_format}
    raise typer.Exit(
        run_dev(
            port=port,
            workers=workers,
            data_dir=data_dir,
            app=app,
            metrics_port=metrics_port,
            log_env={k: v for k, v in logs.items() if v},
        )
    )


def _client() -> Client:
    settings = _settings()
    return Client(settings.api_url, api_key=settings.api_key or None)


cli.add_typer(schedules_cli(_client, out), name="schedules")


@cli.command()
def submit(
    type: Annotated[str, typer.Argument(help="job type: an agent or task name")],
    input: InputOption = None,
    idempotency_key: Annotated[str | None, typer.Option(help="submit at most once per key")] = None,
    priority: Annotated[int, typer.Option(help="-10..10, higher runs first")] = 0,
    wait: Annotated[bool, typer.Option(help="show progress and print the result")] = False,
    timeout: Annotated[float, typer.Option(help="--wait: give up after this many seconds (exit 4)")] = 600.0,
    delay: Annotated[float | None, typer.Option(help="run it this many seconds from now")] = None,
    at: Annotated[str | None, typer.Option(help="run it then: ISO 8601 with an offset, or unix seconds")] = None,
) -> None:
    """Submit a job; print it, or with --wait its result (exit 1 if it failed). With --delay or --at it
    waits as scheduled until then."""
    data = read_input(input)
    run_at: str | float | None = at
    if at is not None and at.replace(".", "", 1).isdigit():
        run_at = float(at)
    with _client() as c:
        job = c.submit(
            type,
            {} if data is None else data,
            idempotency_key=idempotency_key,
            priority=priority,
            run_at=run_at,
            delay=delay,
        )
        if not wait:
            print_json(job)
            return
        err.print(f"job [bold]{job.id}[/] submitted")
        result = _follow(c, job.id, timeout)
        print_json(result)
        if not result.succeeded:
            raise typer.Exit(ExitCode.JOB_FAILED)


def output_line(data: dict[str, Any]) -> str:
    """One ``task.output`` event for people: ``name[seq] data`` (a string as it is, else JSON)."""
    value = data.get("data")
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"{data.get('name')}[{data.get('seq')}] {text}"


def _follow(c: Client, job_id: str, timeout: float) -> JobResult:
    """Follow the job's events with a progress bar, telling how to answer its questions; return its result."""
    states: dict[str, str] = {}
    told: set[str] = set()
    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as bar:
        t = bar.add_task("submitted", total=None)
        for event in c.events(job_id, timeout=timeout):
            data = event.data
            if event.event == "task" and data.get("id"):
                states[str(data["id"])] = str(data.get("state"))
            elif event.event == "job" and data.get("status"):
                bar.update(t, description=str(data["status"]))
            elif event.event == "task.output":  # streamed output, as it arrives (stderr: stdout is the result)
                bar.console.print(output_line(data), markup=False, highlight=False, soft_wrap=True)
            elif event.event == "task.output.dropped":
                bar.console.print(f"[yellow]{data.get('count')} outputs dropped[/]: {escape(str(data.get('reason')))}")
            elif event.event == "approval":
                approval_id = str(data.get("approval_id") or data.get("id") or "")
                if approval_id and data.get("status") == "pending" and approval_id not in told:
                    told.add(approval_id)
                    a = c.approval(approval_id)
                    who = escape(", ".join(a.assignees) or "anyone")
                    bar.console.print(f"[yellow]waiting for a person[/] ({who}): {escape(a.prompt)}")
                    bar.console.print(answer_hint(a), markup=False, highlight=False, soft_wrap=True)
            done = sum(1 for v in states.values() if v in TERMINAL)
            bar.update(t, completed=done, total=len(states) or None)
    return c.wait(job_id, timeout=max(1.0, deadline - time.monotonic()))


def _tasks(w: Mapping[str, Any]) -> str:
    """How many tasks a worker has, and its build (workers of one build have the same tasks)."""
    tasks = w.get("tasks")
    return "all" if tasks is None else f"{len(tasks)} ({w.get('build', '')})"


@cli.command("workers")
def workers(output: OutputOption = Output.table) -> None:
    """The fleet: every worker, its device, what it runs."""
    if output == Output.json:
        with _client() as c:
            print_json({"workers": [w.to_json() for w in c.workers()]})
        return
    with _client() as c:
        rows = c.workers()
    table = Table("id", "status", "role", "device", "serves", "tasks", "slots busy/free", "running", "done", "failed")
    for w in rows:
        d = w.get("device") or {}
        device = "cpu" if d.get("kind") != "gpu" else f"{d.get('name')} ({int(d.get('memory_total', 0)) / 2**30:g} GB)"
        names = sorted({str(c.get("name")) for c in w.get("calls") or []})
        table.add_row(
            str(w.get("id")),
            w["status"],
            str(w.get("role")),
            device,
            ", ".join(w.get("targets", [])),
            _tasks(w),
            f"{w.get('busy', '')}/{w.get('free', '')}",
            ", ".join(names[:3]) + (" ..." if len(names) > 3 else ""),
            str(w.get("done", "")),
            str(w.get("failed", "")),
        )
    out.print(table)


@cli.command("status")
def status(output: OutputOption = Output.table) -> None:
    """The cluster on one screen: lease holder, queues, open jobs, workers and their slots, recent failures."""
    with _client() as c:
        st = c.status()
    if output == Output.json:
        print_json(st)
        return
    orch = st["orchestrator"]
    holder = (
        f"[green]{escape(orch['lease_holder'])}[/] (lease {orch['lease_ttl_s']:g}s left)"
        if orch["lease_holder"]
        else "[red]nobody holds the lease: no orchestrator is active[/]"
    )
    jobs = st["jobs"]
    out.print(f"orchestrator: {holder}")
    shards = st.get("shards", [])
    if len(shards) > 1:  # --shards K: who holds each (an unheld shard's jobs wait for a standby)
        out.print(
            "shards: "
            + ", ".join(
                f"{s['shard']} [green]{escape(s['holder'])}[/]" if s["holder"] else f"{s['shard']} [red]unheld[/]"
                for s in shards
            )
        )
    out.print(
        "open jobs: "
        + ", ".join(f"{k} {v}" for k, v in jobs.items())
        + f"; approvals pending {st['approvals_pending']}"
    )
    queues = Table("queue", "priority", "waiting", "oldest", title="queues")
    for q in st["queues"]:
        age = duration(timedelta(seconds=q["oldest_age_s"])) if q["oldest_age_s"] is not None else ""
        queues.add_row(escape(q["queue"]), q["priority"], str(q["depth"]), age)
    out.print(queues)
    workers = Table("id", "role", "status", "slots busy/free", "done", "failed", title="workers")
    for w in st["workers"]:
        style = {"lost": "red", "draining": "yellow"}.get(w["status"], "green")
        workers.add_row(
            escape(str(w["id"])),
            str(w["role"]),
            f"[{style}]{w['status']}[/]",
            f"{w['busy']}/{w['free']}",
            str(w["done"]),
            str(w["failed"]),
        )
    out.print(workers)
    failures = id_table("recent failure", "type", "error", "finished")
    for f in st["recent_failures"]:
        e = f.get("error") or {}
        failures.add_row(
            f["id"],
            escape(f["type"]),
            escape(f"{e.get('type', '')}: {e.get('message', '')}"[:80]),
            when(f["finished_at"]),
        )
    out.print(failures)


@cli.command("types")
def job_types(output: OutputOption = Output.table) -> None:
    """List the job types the API knows, with their input schemas."""
    with _client() as c:
        types = c.job_types()
    if output == Output.json:
        print_json({"job_types": [t.to_json() for t in types]})
        return
    table = id_table("name", "kind", "input")
    for t in types:
        table.add_row(t.name, t.kind, ", ".join(f.describe() for f in schema.fields(t.input_schema)))
    out.print(table)


@jobs_cli.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option(help="comma-separated states")] = None,
    type: Annotated[str | None, typer.Option(help="job type")] = None,
    limit: Annotated[int, typer.Option(help="page size (1-200)")] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page")] = None,
    output: OutputOption = Output.table,
) -> None:
    """Jobs, newest first, a page at a time."""
    with _client() as c:
        page = c.jobs(status=status, type=type, limit=limit, cursor=cursor)
    if output == Output.json:
        print_json(page)
        return
    table = id_table("id", "type", "status", "created", "took")
    for j in page.jobs:
        took = duration(j.finished_at - j.created_at) if j.finished_at and j.created_at else ""
        table.add_row(j.id, escape(j.type), j.status, when(j["created_at"]), took)
    out.print(table)
    if page.next_cursor:
        out.print(f"next page: --cursor {page.next_cursor}")


JobId = Annotated[str, typer.Argument(help="a job id, or a unique prefix of one")]
ApprovalId = Annotated[str, typer.Argument(help="an approval id, or a unique prefix of one (a job id's works)")]


@jobs_cli.command("show")
def jobs_show(job_id: JobId, output: OutputOption = Output.table) -> None:
    """A job: its state, progress, error, and its tasks with where each ran and why."""
    with _client() as c:
        job = resolve_job(c, job_id)
        if output == Output.json:
            print_json(job)
            return
        signals = c.signals(job.id)
    out.print(f"[bold]{job.id}[/]  {job.type}  [bold]{job.status}[/]")
    started, finished = when(job["started_at"]) or "-", when(job["finished_at"]) or "-"
    out.print(f"created {when(job['created_at'])}  started {started}  finished {finished}")
    if job.get("run_at"):
        out.print(f"due {when(job['run_at'])}")
    if job.schedule_id:
        out.print(f"tick {when(job.get('schedule_tick'))} of schedule {job.schedule_id}")
    if job.progress:
        out.print("progress: " + ", ".join(f"{k} {v}" for k, v in job.progress.items()))
    if job.error:
        out.print(f"[red]error:[/] {escape(job.error.type)}: {escape(job.error.message)}")
    if job.tasks:
        table = id_table("task id", "seq", "name", "state", "attempt", "worker", "why there")
        for t in job.tasks:
            row = (t.id, str(t.seq), t.name, t.state, str(t.attempt), t.worker or "", t.route_reason or "")
            table.add_row(*(escape(v) for v in row))
        out.print(table)
        if job.get("more_tasks"):
            out.print("more tasks: agentbus jobs show --output json, or GET /jobs/{id}/tasks")
    if signals:
        table = id_table("signal", "name", "status", "wait step", "payload")
        for sig in signals:
            step = "" if sig.step is None else str(sig.step)
            table.add_row(*(escape(v) for v in (str(sig.id), sig.name, sig.status, step, json.dumps(sig.payload))))
        out.print(table)


@jobs_cli.command("results")
def jobs_results(
    job_id: JobId,
    wait: Annotated[float, typer.Option(help="wait up to this many seconds for the job to finish")] = 0,
) -> None:
    """The job's result as JSON: exit 0 if it succeeded, 1 if it failed, 4 if it has not finished."""
    with _client() as c:
        job = resolve_job(c, job_id)
        done, body = c.results(job.id, wait=min(wait, 60.0))
        if not done and wait > 60:
            try:
                body = c.wait(job.id, timeout=wait - 60)
                done = True
            except TimeoutError:
                pass
    print_json(body)
    if not done:
        raise typer.Exit(ExitCode.TIMEOUT)
    if not body.succeeded:
        raise typer.Exit(ExitCode.JOB_FAILED)


@jobs_cli.command("cancel")
def jobs_cancel(job_id: JobId) -> None:
    """Cancel a job and what it runs."""
    with _client() as c:
        print_json(c.cancel(resolve_job(c, job_id).id))


@jobs_cli.command("rerun")
def jobs_rerun(job_id: JobId) -> None:
    """Run a finished job again: a new job with the same type, input and priority, linked by rerun_of."""
    with _client() as c:
        print_json(c.rerun(resolve_job(c, job_id).id))


@jobs_cli.command("resume")
def jobs_resume(job_id: JobId) -> None:
    """Resume a failed job: its failed steps get a new attempt, the steps that succeeded are not run again."""
    with _client() as c:
        print_json(c.resume(resolve_job(c, job_id).id))


@jobs_cli.command("signal")
def jobs_signal(
    job_id: JobId,
    name: Annotated[str, typer.Argument(help="the signal's name, as the agent waits for it: ctx.wait_for(name)")],
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="the payload: JSON, @file.json to read it from a file, or -")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="sending again with this key returns the first signal, not a second")
    ] = None,
) -> None:
    """Send a signal to a job: the payload is what its ctx.wait_for(name) returns (kept until a wait takes it)."""
    value = read_input(data)
    with _client() as c:
        print_json(c.signal(resolve_job(c, job_id).id, name, value, idempotency_key=idempotency_key))


@approvals_cli.command("list")
def approvals_list(
    status: Annotated[str | None, typer.Option(help="pending, approved, rejected, expired, cancelled")] = "pending",
    job: Annotated[str | None, typer.Option(help="only this job's")] = None,
    assignee: Annotated[str | None, typer.Option(help="only those assigned to this name")] = None,
    limit: Annotated[int, typer.Option(help="page size (1-200)")] = 20,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page")] = None,
    output: OutputOption = Output.table,
) -> None:
    """Questions to people, newest first."""
    with _client() as c:
        page = c.approvals(status=status, job=job, assignee=assignee, limit=limit, cursor=cursor)
    if output == Output.json:
        print_json(page)
        return
    table = id_table("id", "status", "prompt", "assignees", "deadline")
    for a in page.approvals:
        table.add_row(a.id, a.status, escape(a.prompt), escape(", ".join(a.assignees)), when(a["deadline"]))
    out.print(table)
    if page.next_cursor:
        out.print(f"next page: --cursor {page.next_cursor}")


@approvals_cli.command("show")
def approvals_show(approval_id: ApprovalId, output: OutputOption = Output.table) -> None:
    """A question: what it shows, the fields an answer must fill, and the commands that answer it."""
    with _client() as c:
        a = resolve_approval(c, approval_id)
    if output == Output.json:
        print_json(a)
        return
    out.print(f"[bold]{a.id}[/]  job {a.job_id}  [bold]{a.status}[/]")
    out.print(f"prompt: {escape(a.prompt)}")
    deadline = f"  deadline: {when(a['deadline'])}" if a.deadline else ""
    out.print(f"assignees: {escape(', '.join(a.assignees) or 'anyone')}{deadline}")
    if a.data is not None:
        out.print("data:", json.dumps(a.data, indent=2), markup=False)
    if a.status != "pending":
        out.print(f"answered: {a.decision} by {a.answered_by}" + (f" ({a.comment})" if a.comment else ""))
        return
    if a.schema:
        out.print("to approve, --input must fill:")
        for f in schema.fields(a.schema):
            out.print(f"  {f.describe()}", markup=False)
    out.print("answer with:")
    out.print(answer_hint(a), markup=False, highlight=False, soft_wrap=True)


def _answer(approval_id: str, decision: str, input: str | None, comment: str | None, by: str | None) -> None:
    value = read_input(input)
    with _client() as c:
        a = resolve_approval(c, approval_id, pending=True)
        lacking = schema.missing(a.schema, value) if decision == "approve" else []
        if lacking:
            lines = [f"error: approving {a.id} needs --input with {', '.join(lacking)}; it asks for:"]
            lines += [f"  {f.describe()}" for f in schema.fields(a.schema)]
            lines += ["for example:", answer_hint(a)]
            err.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(ExitCode.USAGE)
        try:
            answered = c.answer(a.id, decision, input=value, comment=comment, by=by)
        except ValidationFailed as exc:
            hint = f"error: {exc.message}\nfor example:\n{answer_hint(a)}"
            err.print(hint, markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(ExitCode.USAGE) from None
    print_json(answered)


@approvals_cli.command("approve")
def approvals_approve(
    approval_id: ApprovalId,
    input: InputOption = None,
    comment: Annotated[str | None, typer.Option(help="a note for the agent")] = None,
    by: Annotated[str | None, typer.Option(help="who answers")] = None,
) -> None:
    """Approve (see `approvals show` for the input the question asks for)."""
    _answer(approval_id, "approve", input, comment, by)


@approvals_cli.command("reject")
def approvals_reject(
    approval_id: ApprovalId,
    comment: Annotated[str | None, typer.Option(help="why, or what to change")] = None,
    by: Annotated[str | None, typer.Option(help="who answers")] = None,
) -> None:
    """Reject, with a comment the agent reads."""
    _answer(approval_id, "reject", None, comment, by)


def _repos() -> Any:
    from agentbus.store import Repositories

    return Repositories.from_url(_settings().database_url)


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

    repos = _repos()
    token, rec = repos.keys.create_key(
        keys.check_tenant(tenant), keys.parse_scopes(scopes), keys.parse_duration(expires) if expires else None, name
    )
    repos.close()
    err.print(f"key {rec.id} for tenant [bold]{rec.tenant}[/] ({', '.join(rec.scopes)}); shown once:")
    print(token)


KEY_FIELDS = ("id", "prefix", "tenant", "scopes", "name", "created_at", "expires_at", "revoked_at", "last_used_at")


@keys_cli.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="only this tenant's")] = None,
    output: OutputOption = Output.table,
) -> None:
    """Every key (never the secret): json has KEY_FIELDS, times as Unix seconds."""
    repos = _repos()
    rows = repos.keys.list_keys(tenant)
    repos.close()
    if output == Output.json:
        print_json({"keys": [{f: getattr(k, f) for f in KEY_FIELDS} for k in rows]})
        return
    table = id_table("id", "prefix", "tenant", "scopes", "name", "expires", "revoked")
    for k in rows:
        expires = time.strftime("%Y-%m-%d %H:%M", time.gmtime(k.expires_at)) if k.expires_at else ""
        table.add_row(
            k.id, k.prefix, k.tenant, ",".join(k.scopes), k.name or "", expires, "yes" if k.revoked_at else ""
        )
    out.print(table)


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="a key id, or a unique prefix of one")]) -> None:
    repos = _repos()
    try:
        matches = [k.id for k in repos.keys.list_keys() if k.id.startswith(key_id)]
        rec = repos.keys.revoke_key(
            key_id if key_id in matches else unique(key_id, matches, "key", "looked in all keys")
        )
    finally:
        repos.close()
    out.print(f"key {rec.id} ({rec.prefix}) revoked; API replicas stop accepting it within AGENTBUS_KEY_CACHE (5 s)")


@cli.command()
def purge(
    older_than: Annotated[
        str | None, typer.Option(help=option_help("retention_s", "finished before this long ago, e.g. 30d, 12h"))
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="count what would go, delete nothing")] = False,
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="rows per transaction")] = 1000,
) -> None:
    """Delete finished jobs (with their steps, events, approvals, webhook deliveries) and expired memory items.

    Talks to the database directly; the orchestrator does the same on its own every few minutes.
    """
    from agentbus.domain.retention import cutoff, parse_age
    from agentbus.store import Repositories, Retention

    settings = _settings()
    age = parse_age(older_than) if older_than else settings.retention_s
    if age <= 0:
        raise ConfigError("retention is off (AGENTBUS_RETENTION=0): give --older-than")
    repos = Repositories.from_url(settings.database_url)
    retention = Retention(repos.db)
    now = time.time()
    try:
        before = cutoff(now, age)
        counts = retention.count(before, now) if dry_run else retention.purge(before, now, batch)
    finally:
        repos.close()
    verb = "would delete" if dry_run else "deleted"
    summary = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in vars(counts).items())
    out.print(f"{verb}: {summary}")


@cli.command("config")
def config_(
    output: OutputOption = Output.table,
    docs: Annotated[bool, typer.Option("--docs", help="print the reference (docs/configuration.md) instead")] = False,
) -> None:
    """The settings in effect here and where each came from (default or env), secrets masked.

    Checks them as a role would at start: a bad value is an error naming its variable.
    """
    from agentbus.config.reference import effective, markdown

    if docs:
        sys.stdout.write(markdown())
        return
    entries = effective()
    if output == Output.json:
        print_json({"settings": [e.to_json() for e in entries]})
        return
    table = id_table("variable", "source", "value", ids=2)
    for e in entries:
        table.add_row(e.env, "[bold]env[/]" if e.source == "env" else "default", escape(e.text))
    out.print(table)


def main() -> None:
    try:
        cli()
    except (AgentbusError, TimeoutError) as exc:
        message = exc.message if isinstance(exc, AgentbusError) else str(exc)
        err.print(f"[red]error:[/] {escape(message)}")
        sys.exit(exit_code(exc))
