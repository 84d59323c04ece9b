"""The tests' App: every example of ``agentbus.examples`` plus agents and tasks that exist only to test
a behaviour (timeouts, GPU routing, concurrency caps, floods of output, ...).

The examples App is what ``agentbus dev`` and a new user run; these fixtures stay out of it. The e2e
cluster loads this module (``tests/`` on the roles' PYTHONPATH, ``AGENTBUS_APP=fixture_app:app``);
tests that build the API in-process import ``app`` from here.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from agentbus import AgentContext, App, Schedule, SignalTimeout, TaskContext
from agentbus.examples import app as examples
from agentbus.examples import map_reduce, slow, square

app = App("tests")
app.include(examples)


@app.task(timeout=1.0)
def stubborn(ctx: TaskContext, seconds: float = 30.0) -> float:
    """Runs past its one-second timeout."""
    time.sleep(seconds)
    return seconds


@app.agent
def panel(ctx: AgentContext, reviewers: list[str]) -> dict[str, Any]:
    """Parallel approvals: one question per reviewer, continue when all have answered."""
    answers = ctx.ask_all([{"prompt": f"{r}: approve?", "assignees": [r]} for r in reviewers])
    return {"approvals": sum(1 for a in answers if a["approved"]), "by": sorted(a["by"] for a in answers)}


@app.agent
def hooked(ctx: AgentContext, url: str, timeout: float = 4.0) -> dict[str, Any]:
    """An approval that notifies a webhook when it is created, answered or expires."""
    answer = ctx.ask_human("Approve (a webhook is told)?", timeout=timeout, on_timeout="approve", webhook=url)
    return {"approved": answer["approved"], "timed_out": answer["timed_out"], "by": answer["by"]}


@app.task(device="gpu")
def gpu_only(ctx: TaskContext, x: int) -> dict[str, Any]:
    """Waits for a GPU worker: no fallback."""
    return {"device": ctx.device, "x": x}


@app.task(device="gpu", gpu_memory="24GB", fallback="cpu")
def big_model(ctx: TaskContext, x: int) -> dict[str, Any]:
    """Needs a 24 GB device; on smaller ones it falls back to the CPU."""
    return {"device": ctx.device, "x": x}


@app.task(concurrency_key="model:{model}", max_concurrency=2)
def infer(ctx: TaskContext, model: str, i: int, seconds: float = 0.2) -> dict[str, Any]:
    """At most two calls per model run at once across the fleet; each reports when it ran."""
    start = time.time()
    time.sleep(seconds)
    return {"i": i, "start": start, "end": time.time()}


@app.agent
def batch_infer(ctx: AgentContext, model: str = "m1", n: int = 8, seconds: float = 0.2) -> list[dict[str, Any]]:
    return ctx.map(infer, [{"model": model, "i": i, "seconds": seconds} for i in range(n)], unpack=True)


@app.agent
def stamp(ctx: AgentContext, label: str, n: int = 3, seconds: float = 0.05) -> list[dict[str, Any]]:
    """n short calls that record when they ran (for priority tests)."""
    return ctx.map(timed, [{"label": label, "i": i, "seconds": seconds} for i in range(n)], unpack=True)


@app.task
def timed(ctx: TaskContext, label: str, i: int, seconds: float = 0.05) -> dict[str, Any]:
    start = time.time()
    time.sleep(seconds)
    return {"label": label, "i": i, "start": start, "end": time.time()}


@app.task(timeout=1.0)
async def dawdle(ctx: TaskContext, seconds: float = 30.0) -> float:
    """An async task that runs past its one-second timeout: it is cancelled at the deadline."""
    await asyncio.sleep(seconds)
    return seconds


@app.task(timeout=600)
async def slow_async(ctx: TaskContext, seconds: float = 30.0) -> float:
    """A long async task to cancel."""
    await asyncio.sleep(seconds)
    return seconds


@app.task(timeout=600)
def polite(ctx: TaskContext, seconds: float = 30.0) -> float:
    """A long sync task that stops early when its call is cancelled (``ctx.cancelled``)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not ctx.cancelled:
        time.sleep(0.02)
    return seconds


@app.agent
def long_waits(ctx: AgentContext, tasks: int = 4, seconds: float = 30.0, mode: str = "async") -> list[float]:
    """Several long calls (async, or sync that check ``ctx.cancelled``): cancel it while they run."""
    return ctx.map(slow_async if mode == "async" else polite, [seconds] * tasks)


@app.task(worker_concurrency=2)
async def narrow(ctx: TaskContext, i: int, seconds: float = 0.2) -> dict[str, float]:
    """At most two calls of this task at once on one worker (``worker_concurrency``)."""
    start = time.time()
    await asyncio.sleep(seconds)
    return {"start": start, "end": time.time()}


@app.agent
def narrow_map(ctx: AgentContext, n: int = 6, seconds: float = 0.2) -> list[dict[str, float]]:
    return ctx.map(narrow, [{"i": i, "seconds": seconds} for i in range(n)], unpack=True)


@app.task(timeout=120)
def chatter_sync(ctx: TaskContext, n: int = 10, every: float = 0.01) -> int:
    """The same from a sync task (on a worker thread)."""
    for i in range(n):
        ctx.emit({"token": f"t{i}"})
        time.sleep(every)
    return n


@app.task(timeout=120)
def flood(ctx: TaskContext, n: int = 100_000) -> dict[str, int]:
    """Emits far more than any buffer keeps, as fast as it can: the call is not slowed into failure."""
    for i in range(n):
        ctx.emit(i)
    return {"emitted": n}


@app.agent
def narrator(ctx: AgentContext, steps: int = 3) -> list[int]:
    """An agent that emits before and after each step: replayed once per step, each emit is sent once."""
    got = []
    for i in range(steps):
        ctx.emit({"step": i, "phase": "before"})
        got.append(ctx.run(square, i))
        ctx.emit({"step": i, "phase": "after"})
    return got


@app.task(retries=0)
def tally(ctx: TaskContext, path: str, x: int) -> int:
    """Counts its runs in a file (e2e tests read how often a call really ran), then squares ``x``."""
    with open(path, "a") as f:
        f.write("ran\n")
    return x * x


@app.task(retries=0)
def gated(ctx: TaskContext, gate: str, x: int) -> int:
    """Fails for good until the file ``gate`` exists: an outside fault a person fixes before a resume."""
    if not os.path.exists(gate):
        raise RuntimeError(f"the gate {gate} is closed")
    return x + 1


@app.agent
def tally_then_gated(ctx: AgentContext, count: str, gate: str, x: int = 3) -> dict[str, int]:
    """A call that succeeds, then one that fails until its gate opens: a resume runs only the second."""
    first = ctx.run(tally, count, x)
    second = ctx.run(gated, gate, first)
    return {"first": first, "second": second}


@app.agent
def clumsy(ctx: AgentContext, x: int = 3) -> int:
    """Its own code raises once its task is done: the job fails with a traceback that names it."""
    squared: int = ctx.run(square, x)
    return squared // 0


@app.agent
def oversees(ctx: AgentContext, count: str, gate: str) -> dict[str, Any]:
    """A sub-agent that fails until its gate opens (resuming this job resumes the child), or, with an
    empty ``gate``, one whose own code raises (nothing to resume)."""
    if not gate:
        return {"child": ctx.call_agent(clumsy, 3)}
    return {"child": ctx.call_agent(tally_then_gated, count, gate)}


@app.agent
def side_by_side(ctx: AgentContext, n: int = 4) -> dict[str, Any]:
    """A task and a sub-agent at once (input given positionally), then the first of two calls to finish:
    the slow one is still running when the agent returns, and is cancelled with the job."""
    squared = ctx.start(square, n)
    child = ctx.start(map_reduce, n)
    long_one = ctx.start(slow, 60.0)
    quick = ctx.start(square, n + 1)
    first = ctx.wait_any(long_one, quick)
    ctx.gather(squared, child)  # both over: their results are read without another wait
    return {"square": squared.result(), "sum": child.result()["sum"], "first": first.result()}


@app.agent
def two_steps(ctx: AgentContext, x: int = 3) -> dict[str, int]:
    """Two calls one after the other: a resume retries the second without running the first again."""
    first: int = ctx.run(square, x)
    second: int = ctx.run(square, first)
    return {"first": first, "second": second}


@app.agent(schedule=Schedule("0 0 1 1 *", timezone="Europe/Paris", input={"x": 2}, name="new-year"))
def new_year(ctx: AgentContext, x: int = 1) -> int:
    """Declared with a schedule: every orchestrator keeps it in the schedules table at its start."""
    squared: int = ctx.run(square, x)
    return squared


DECISION = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@app.agent
def signalled(ctx: AgentContext, x: int = 3, pause: float = 0.0, timeout: float | None = None) -> dict[str, Any]:
    """A task (then a pause, to be signalled before it waits), then a wait for the signal "approve"."""
    squared: int = ctx.run(square, x)
    if pause:
        ctx.sleep(pause)
    try:
        decision = ctx.wait_for("approve", timeout=timeout, schema=DECISION)
    except SignalTimeout as exc:
        return {"square": squared, "timed_out": exc.signal}
    return {"square": squared, "decision": decision}


@app.agent
def stoppable(ctx: AgentContext, seconds: float = 60.0) -> dict[str, Any]:
    """Long work or the signal "stop", whichever comes first: the work is cancelled with the job."""
    stop, work = ctx.signal("stop"), ctx.start(slow, seconds)
    first = ctx.wait_any(stop, work)
    return {"stopped": first.result()} if first is stop else {"worked": first.result()}
