"""The replay engine's own cost for a fan-out: CPU time of one replay of an agent mapping a task over
n items, pure (no PostgreSQL or Redis), best of several runs.

    python -m bench.replay [--n 10000] [--runs 9]

``first``: the replay that builds the fan-out (binds and checks every call's arguments);
``waiting``: a replay while every call is journaled and running; ``done``: the replay that
returns once all have succeeded. CPU time (``time.process_time``), so that other load on the
machine moves the figures less.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from agentbus.domain import AgentContext, App, StepRecord, TaskState, replay

app = App("bench-replay")


@app.task
def noop(ctx: Any, i: int = 0) -> int:
    return i


@app.agent
def fan(ctx: AgentContext, n: int) -> int:
    return len(ctx.map(noop, range(n)))


def best(f: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        f()
        times.append(time.process_time() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=9)
    a = ap.parse_args()
    journals: dict[str, dict[int, StepRecord]] = {
        "first": {},
        "waiting": {i: StepRecord(i, "task", "noop", TaskState.RUNNING) for i in range(a.n)},
        "done": {i: StepRecord(i, "task", "noop", TaskState.SUCCEEDED, i) for i in range(a.n)},
    }
    for name, journal in journals.items():
        seconds = best(
            lambda j=journal: replay(app, fan, {"n": a.n}, j, job_id="j", clock=time.time, new_uuid=lambda: "u"),
            a.runs,
        )
        print(f"{name:8} {a.n:>7,} calls  {seconds * 1000:7.1f} ms CPU  ({seconds / a.n * 1e6:.2f} µs a call)")


if __name__ == "__main__":
    main()
