"""Loaded by every Python process started with this folder on PYTHONPATH (bench/costs.py does): counts
the process's PostgreSQL statements and Redis round trips, and writes them with its CPU time to
$AGENTBUS_BENCH_COUNT_DIR/<role>-<pid>.json every 0.2 s. Bench-only; never imported by agentbus."""

from __future__ import annotations

import json
import os
import sys
import threading

_DIR = os.environ.get("AGENTBUS_BENCH_COUNT_DIR")
counts = {"pg_statements": 0, "redis_round_trips": 0}


def _install() -> None:
    import psycopg2
    import psycopg2.extensions

    class CountingCursor(psycopg2.extensions.cursor):
        def execute(self, query, vars=None):  # type: ignore[no-untyped-def]
            counts["pg_statements"] += 1
            return super().execute(query, vars)

        def executemany(self, query, vars_list):  # type: ignore[no-untyped-def]
            counts["pg_statements"] += 1
            return super().executemany(query, vars_list)

    connect = psycopg2.connect

    def counting_connect(*args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.setdefault("cursor_factory", CountingCursor)
        return connect(*args, **kwargs)

    psycopg2.connect = counting_connect

    import redis.connection

    # one send per round trip: a pipeline packs all its commands into one send
    send = redis.connection.AbstractConnection.send_packed_command

    def counting_send(self, command, check_health=True):  # type: ignore[no-untyped-def]
        counts["redis_round_trips"] += 1
        return send(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting_send
    try:
        import redis.asyncio.connection as aconn

        asend = aconn.AbstractConnection.send_packed_command

        async def counting_asend(self, command, check_health=True):  # type: ignore[no-untyped-def]
            counts["redis_round_trips"] += 1
            return await asend(self, command, check_health)

        aconn.AbstractConnection.send_packed_command = counting_asend
    except (ImportError, AttributeError):
        pass


def _role() -> str:
    argv = sys.argv
    if "--role" in argv:
        return argv[argv.index("--role") + 1]
    return "other"


def _dump() -> None:
    path = os.path.join(_DIR or ".", f"{_role()}-{os.getpid()}.json")
    while True:
        t = os.times()
        data = {**counts, "cpu_s": t.user + t.system}
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
        threading.Event().wait(0.2)


if _DIR and "run" in sys.argv and "--role" in sys.argv:
    _install()
    threading.Thread(target=_dump, name="bench-counts", daemon=True).start()
