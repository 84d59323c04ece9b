"""How the client commands talk to people and scripts: tables, JSON, --input, exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import timedelta
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from agentbus.domain import ConfigError, Forbidden, InvalidInput, NotFound, PayloadTooLarge, Unauthorized

EXIT_CODES = (
    "Exit codes: 0 ok; 1 the job failed or was cancelled; 2 bad usage or input; 3 not found; "
    "4 timed out before the job finished; 5 not authorized; 6 the API is unavailable, or anything else."
)


class Output(StrEnum):
    table = "table"
    json = "json"


OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="table: for people; json: the API's JSON, for scripts")
]
InputOption = Annotated[
    str | None, typer.Option("--input", "-i", help="JSON, @file.json to read it from a file, or - for stdin")
]


class ExitCode(IntEnum):
    """What the client commands exit with (README "Exit codes")."""

    OK = 0
    JOB_FAILED = 1  # the job failed or was cancelled (submit --wait, jobs results)
    USAGE = 2  # bad arguments or input: the API's 400/413/422, an ambiguous id prefix
    NOT_FOUND = 3  # no such job or approval (404, or no id starts with the prefix)
    TIMEOUT = 4  # --wait/--timeout ran out before the job finished
    AUTH = 5  # the key is missing, wrong or lacks the scope (401/403)
    UNAVAILABLE = 6  # the API cannot be reached or refused for now (503, 429, 409), or anything else


def exit_code(exc: BaseException) -> ExitCode:
    if isinstance(exc, TimeoutError):
        return ExitCode.TIMEOUT
    if isinstance(exc, NotFound):
        return ExitCode.NOT_FOUND
    if isinstance(exc, Unauthorized | Forbidden):
        return ExitCode.AUTH
    if isinstance(exc, InvalidInput | PayloadTooLarge | ConfigError):
        return ExitCode.USAGE
    return ExitCode.UNAVAILABLE


def print_json(value: Any) -> None:
    """Plain JSON on stdout: no colours, no wrapping, whatever the terminal."""
    sys.stdout.write(json.dumps(dict(value) if isinstance(value, Mapping) else value, indent=2) + "\n")


def read_input(raw: str | None) -> Any:
    """--input as given: JSON, ``@path`` for a file's JSON, ``-`` for stdin's."""
    if raw is None:
        return None
    source = "--input"
    try:
        if raw == "-":
            raw, source = sys.stdin.read(), "stdin"
        elif raw.startswith("@"):
            path = raw[1:]
            raw, source = Path(path).read_text(), path
    except OSError as exc:
        raise InvalidInput(f"cannot read --input {raw}: {exc.strerror}") from None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"{source} is not JSON: {exc}") from None


def when(iso: str | None) -> str:
    """An API timestamp to the minute, for tables (--output json has it whole)."""
    return (iso or "")[:16].replace("T", " ")


WHOLE = {"status", "state"}  # short words that read badly when folded


def duration(d: timedelta) -> str:
    s = d.total_seconds()
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def id_table(*columns: str, ids: int = 1) -> Table:
    """A table whose first ``ids`` columns (ids) are never cut: the other columns wrap instead.
    No vertical rules, so that an 80-column terminal has room for a whole id and more."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for i, name in enumerate(columns):
        if i < ids or name in WHOLE:
            table.add_column(name, no_wrap=True, overflow="ignore")
        else:
            table.add_column(name, overflow="fold")
    return table
