"""Run an agentbus role counting its PostgreSQL statements and Redis round trips (for bench/jobs.py).

    python -m bench._counted COUNTS_FILE run --role api ...

Counting happens in the role's own process, at the driver boundary: every ``cursor.execute``
(psycopg2, so ``execute_values`` pages count too) and every packed send to Redis (one per
command, one per pipeline; a pipeline is one round trip). The totals are written to
COUNTS_FILE as JSON every 0.2 s, so the benchmark reads them before and after its window.
Nothing here changes agentbus's code: the patches live in this process only.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import peewee
import psycopg2.extensions
import redis.asyncio.connection
import redis.connection

COUNTS: dict[str, float] = {"sql": 0, "redis_round_trips": 0, "redis_commands": 0, "gc_ms": 0.0, "gc_over_10ms": 0}
KINDS: Counter[str] = Counter()  # statement openings and Redis command names, for the story per job
_lock = threading.Lock()


class _CountingCursor(psycopg2.extensions.cursor):
    def execute(self, query: Any, vars: Any = None) -> Any:
        with _lock:
            COUNTS["sql"] += 1
            KINDS["sql " + _opening(query)] += 1
        return super().execute(query, vars)

    def executemany(self, query: Any, vars_list: Any) -> Any:
        with _lock:
            COUNTS["sql"] += 1
        return super().executemany(query, vars_list)


def _opening(query: Any) -> str:
    text = query.decode(errors="replace") if isinstance(query, bytes) else str(query)
    return " ".join(text.split()[:4])[:60]


def _name(cmd: Any) -> str:
    return cmd.decode() if isinstance(cmd, bytes) else str(cmd)


def _patch() -> None:
    connect = peewee.PostgresqlDatabase._connect

    def counted_connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        conn = connect(self, *args, **kwargs)
        conn.cursor_factory = _CountingCursor
        return conn

    peewee.PostgresqlDatabase._connect = counted_connect  # type: ignore[method-assign]
    send = redis.connection.AbstractConnection.send_packed_command

    def counted_send(self: Any, command: Any, check_health: bool = True) -> None:
        with _lock:
            COUNTS["redis_round_trips"] += 1
        send(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counted_send  # type: ignore[method-assign]
    pack = redis.connection.AbstractConnection.pack_commands

    def counted_pack(self: Any, commands: Any) -> Any:
        commands = list(commands)
        with _lock:
            COUNTS["redis_commands"] += len(commands)
            for c in commands:
                KINDS[f"redis {_name(c[0])} (pipelined)"] += 1
        return pack(self, commands)

    redis.connection.AbstractConnection.pack_commands = counted_pack  # type: ignore[method-assign]
    send_one = redis.connection.AbstractConnection.send_command

    def counted_send_one(self: Any, *args: Any, **kwargs: Any) -> None:
        with _lock:
            COUNTS["redis_commands"] += 1
            KINDS[f"redis {_name(args[0])}"] += 1
        send_one(self, *args, **kwargs)

    redis.connection.AbstractConnection.send_command = counted_send_one  # type: ignore[method-assign]
    _patch_asyncio()
    gc.callbacks.append(_gc_timed)


_gc_started = 0.0


def _gc_timed(phase: str, info: dict[str, Any]) -> None:
    """The cyclic collector's pauses: every thread of the process stands still for each."""
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
        return
    ms = (time.perf_counter() - _gc_started) * 1000
    COUNTS["gc_ms"] += ms  # no lock: a collection runs under the GIL, and taking _lock here could deadlock
    COUNTS["gc_over_10ms"] += ms >= 10


def _patch_asyncio() -> None:
    """The same counts for redis-py's asyncio client (the API's rate limits and job notices)."""
    conn = redis.asyncio.connection.AbstractConnection
    send, send_one, pack = conn.send_packed_command, conn.send_command, conn.pack_commands

    async def counted_send(self: Any, command: Any, check_health: bool = True) -> None:
        with _lock:
            COUNTS["redis_round_trips"] += 1
        await send(self, command, check_health)

    async def counted_send_one(self: Any, *args: Any, **kwargs: Any) -> None:
        with _lock:
            COUNTS["redis_commands"] += 1
            KINDS[f"redis {_name(args[0])} (async)"] += 1
        await send_one(self, *args, **kwargs)

    def counted_pack(self: Any, commands: Any) -> Any:
        commands = list(commands)
        with _lock:
            COUNTS["redis_commands"] += len(commands)
            for c in commands:
                KINDS[f"redis {_name(c[0])} (async, pipelined)"] += 1
        return pack(self, commands)

    conn.send_packed_command = counted_send  # type: ignore[method-assign]
    conn.send_command = counted_send_one  # type: ignore[method-assign]
    conn.pack_commands = counted_pack  # type: ignore[method-assign]


def _writer(path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    while True:
        with _lock:
            snapshot: dict[str, Any] = {**COUNTS, "kinds": dict(KINDS)}
        tmp.write_text(json.dumps(snapshot))
        os.replace(tmp, path)
        threading.Event().wait(0.2)


def read_counts(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {**dict.fromkeys(COUNTS, 0), "kinds": {}}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    _patch()
    threading.Thread(target=_writer, args=(out,), daemon=True).start()
    sys.argv = ["agentbus", *sys.argv[2:]]
    from agentbus.cli import main

    main()
