"""``agentbus schedules``: create, list, show, pause, resume and delete recurring jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from agentbus.cli._ids import unique
from agentbus.cli._output import InputOption, Output, OutputOption, id_table, print_json, read_input, when
from agentbus.client import Client, Schedule
from agentbus.domain import NotFound

ScheduleRef = Annotated[str, typer.Argument(help="a schedule's name, id, or a unique prefix of its id")]


def resolve_schedule(c: Client, ref: str) -> Schedule:
    """The schedule named ``ref``, or whose id is (or starts with) ``ref``."""
    try:
        return c.schedule(ref)
    except NotFound:
        pass
    found, after = [], None
    while True:
        page = c.schedules(limit=200, after=after)
        for s in page:
            if s.name == ref:
                return s
            if s.id.startswith(ref):
                found.append(s.id)
        if len(page) < 200:
            break
        after = page[-1].name
    return c.schedule(unique(ref, found, "schedule", "looked at every schedule of the tenant"))


def schedules_cli(client: Callable[[], Client], out: Console) -> typer.Typer:
    """The command group, over the CLI's client (``client()``: one per command)."""
    group = typer.Typer(help="Recurring jobs: an agent run on a cron schedule.", no_args_is_help=True)

    def show(s: Schedule, output: Output) -> None:
        if output == Output.json:
            print_json(s)
            return
        state = "[yellow]paused[/]" if s.paused else "active"
        out.print(f"[bold]{s.name}[/]  {s.id}  {state}  ({s.origin})")
        out.print(f"runs {escape(s.agent)} at '{escape(s.cron)}' {s.timezone}, catch-up {s.catch_up}")
        out.print(f"input {escape(str(dict(s.input or {})))}")
        if s.upcoming:
            out.print("next: " + ", ".join(when(t.isoformat()) for t in s.upcoming))
        if s.last_run_at:
            out.print(f"last: {when(s['last_run_at'])} (job {s.last_job_id})")

    @group.command("create")
    def create(
        name: Annotated[str, typer.Argument(help="unique in your tenant")],
        agent: Annotated[str, typer.Argument(help="the agent (or task) each tick runs")],
        cron: Annotated[str, typer.Argument(help="'0 * * * *', 6 fields with seconds first, or @daily, ...")],
        input: InputOption = None,
        timezone: Annotated[str, typer.Option("--timezone", "--tz", help="an IANA time zone")] = "UTC",
        catch_up: Annotated[str, typer.Option(help="after a downtime: latest, skip or all")] = "latest",
        paused: Annotated[bool, typer.Option(help="create it paused")] = False,
        output: OutputOption = Output.table,
    ) -> None:
        """Run AGENT on each tick of CRON (docs/schedules.md)."""
        data = read_input(input)
        with client() as c:
            s = c.create_schedule(name, agent, cron, data, timezone=timezone, catch_up=catch_up, paused=paused)
        show(s, output)

    @group.command("list")
    def list_(output: OutputOption = Output.table) -> None:
        """Your tenant's schedules, by name."""
        rows: list[Schedule] = []
        with client() as c:
            after = None
            while True:
                page = c.schedules(limit=200, after=after)
                rows.extend(page)
                if len(page) < 200:
                    break
                after = page[-1].name
        if output == Output.json:
            print_json([dict(s) for s in rows])
            return
        table = id_table("id", "name", "agent", "cron", "timezone", "status", "next run")
        for s in rows:
            status = "paused" if s.paused else "active"
            nxt = when(s["next_run_at"]) if s.next_run_at else "-"
            table.add_row(*(escape(v) for v in (s.id, s.name, s.agent, s.cron, s.timezone, status, nxt)))
        out.print(table)

    @group.command("show")
    def show_(ref: ScheduleRef, output: OutputOption = Output.table) -> None:
        """A schedule with its next ticks and its last run."""
        with client() as c:
            show(resolve_schedule(c, ref), output)

    @group.command("pause")
    def pause(ref: ScheduleRef, output: OutputOption = Output.table) -> None:
        """Stop firing until resumed."""
        with client() as c:
            show(c.pause_schedule(resolve_schedule(c, ref).id), output)

    @group.command("resume")
    def resume(ref: ScheduleRef, output: OutputOption = Output.table) -> None:
        """Fire again from the next tick (ticks during the pause are skipped)."""
        with client() as c:
            show(c.resume_schedule(resolve_schedule(c, ref).id), output)

    @group.command("delete")
    def delete(ref: ScheduleRef) -> None:
        """Delete a schedule (the jobs it made are kept)."""
        with client() as c:
            s = resolve_schedule(c, ref)
            c.delete_schedule(s.id)
        out.print(f"deleted schedule {escape(s.name)} ({s.id})")

    return group
