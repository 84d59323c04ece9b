"""Logging for every role: text for people, JSON lines for machines, both carrying context ids.

The ids (job, task, attempt, tenant, request) live in context variables: an asyncio task and
a request handler see their own, and a worker's call thread binds its call before running
it. A filter copies those that are set onto each record, so the JSON formatter writes them
as fields and the text format appends them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

FIELDS = ("job_id", "task_id", "attempt", "tenant", "request_id")
_vars: dict[str, ContextVar[Any]] = {f: ContextVar(f"agentbus_log_{f}", default=None) for f in FIELDS}
LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("text", "json")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


def valid_request_id(value: str | None) -> str | None:
    """A client's X-Request-ID when it is short and made of safe characters (it lands in logs), else None."""
    return value if value is not None and _REQUEST_ID.match(value) else None


def bind(**fields: Any) -> None:
    """Set context ids for what this task or thread logs from now on (None clears one)."""
    for name, value in fields.items():
        _vars[name].set(value)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Context ids for the duration of a block."""
    tokens = [(_vars[name], _vars[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current(name: str) -> Any:
    return _vars[name].get()


class _ContextFilter(logging.Filter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = self.role
        extras = []
        for name, var in _vars.items():
            value = var.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
            if getattr(record, name, None) is not None:
                extras.append(f"{name}={getattr(record, name)}")
        record.context = (" " + " ".join(extras)) if extras else ""
        return True


def configure_logging(role: str, level: str = "warning", fmt: str = "text", stream: Any = None) -> None:
    """Replace the root logger's handlers with one that writes ``fmt`` lines at ``level`` to stderr."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_ContextFilter(role))
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter(
            "{asctime}{levelname}{name}{message}{role}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, "context"],
            timestamp=False,
        )
    else:
        formatter = logging.Formatter("%(asctime)s %(role)s %(name)s %(levelname)s %(message)s%(context)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    # debug is for agentbus's own lines: the libraries' (every SQL statement, every BLPOP) stay at info
    root.setLevel(max(logging.INFO, logging.getLevelName(level.upper())))
    logging.getLogger("agentbus").setLevel(level.upper())


__all__ = ["FIELDS", "FORMATS", "LEVELS", "bind", "configure_logging", "current", "log_context", "valid_request_id"]
