"""The examples App that ships with agentbus, so that `agentbus dev` has something real to run.

Run any role with ``--app agentbus.examples:app`` (the default).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from agentbus.domain import App, Context, TaskContext, TaskFailed

app = App("examples")


@app.task
def echo(ctx: Context, message: str) -> str:
    """One task: returns its input."""
    return message


@app.task
def noop(ctx: Context, i: int = 0) -> int:
    return i


@app.task
def square(ctx: Context, x: int) -> int:
    return x * x


@app.task(retries=3, backoff=0.2)
def flaky(ctx: TaskContext, failures: int = 2) -> dict[str, int]:
    """Fails its first ``failures`` attempts, then succeeds: retries with backoff."""
    if ctx.attempt <= failures:
        raise RuntimeError(f"attempt {ctx.attempt} fails on purpose")
    return {"attempts": ctx.attempt}


@app.task
def always_fails(ctx: Context, reason: str = "no luck") -> None:
    raise ValueError(reason)


@app.task(timeout=600)
def slow(ctx: Context, seconds: float = 30.0) -> float:
    """A long task to cancel."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)
    return seconds


@app.task
def pause(ctx: Context, x: int, seconds: float = 0.005) -> int:
    """Takes a little time, so that a job is still running when something breaks."""
    time.sleep(seconds)
    return x


@app.agent
def paced_map(ctx: Context, n: int = 1000, seconds: float = 0.005) -> dict[str, int]:
    values = ctx.map(pause, [{"x": i, "seconds": seconds} for i in range(n)], unpack=True)
    return {"n": len(values), "sum": sum(values)}


@app.task(timeout=1.0)
def stubborn(ctx: Context, seconds: float = 30.0) -> float:
    """Runs past its one-second timeout."""
    time.sleep(seconds)
    return seconds


@app.agent
def map_reduce(ctx: Context, n: int = 100) -> dict[str, int]:
    """Fan-out/fan-in: square 0..n-1 in parallel tasks, sum the squares."""
    squares = ctx.map(square, range(n))
    return {"n": n, "sum": sum(squares)}


@app.agent
def noop_map(ctx: Context, n: int = 10_000) -> int:
    """The benchmark's agent: n no-op tasks."""
    return len(ctx.map(noop, range(n)))


@app.agent
def parent(ctx: Context, n: int = 10) -> dict[str, Any]:
    """An agent calling a sub-agent."""
    child = ctx.call_agent(map_reduce, n=n)
    echoed = ctx.run(echo, f"child summed {child['sum']}")
    return {"child": child, "echo": echoed}


@app.agent
def careful(ctx: Context, reason: str = "no luck") -> dict[str, str]:
    """A task failure arrives in the agent as an exception it can catch."""
    try:
        ctx.run(always_fails, reason)
    except TaskFailed as exc:
        return {"caught": exc.error_type, "message": exc.error_message}
    return {"caught": "nothing"}


@app.agent
def retrying(ctx: Context, failures: int = 2) -> dict[str, int]:
    out: dict[str, int] = ctx.run(flaky, failures)
    return out


@app.agent
def nap(ctx: Context, seconds: float = 1.0) -> dict[str, float]:
    """A durable sleep: no worker is held while it waits."""
    start = ctx.now()
    ctx.sleep(seconds)
    return {"slept": ctx.now() - start}


@app.agent
def long_haul(ctx: Context, tasks: int = 4, seconds: float = 30.0) -> list[float]:
    """Several long tasks: cancel it while they run."""
    return ctx.map(slow, [seconds] * tasks)


# -- human in the loop ---------------------------------------------------------------------------

REVIEW_SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string", "minLength": 1}, "priority": {"type": "integer", "minimum": 1}},
    "required": ["title"],
    "additionalProperties": False,
}


@app.task
def draft(ctx: Context, topic: str, revision: int = 0, notes: str | None = None) -> str:
    text = f"Draft {revision + 1} about {topic}"
    return f"{text} (revised: {notes})" if notes else text


@app.task
def publish(ctx: Context, text: str, title: str) -> dict[str, str]:
    return {"published": title, "text": text}


@app.agent
def editorial(ctx: Context, topic: str, max_rounds: int = 3, reviewers: list[str] | None = None) -> dict[str, Any]:
    """Draft, ask for approval, then publish — or revise with the reviewer's comment and ask again."""
    notes = None
    for revision in range(max_rounds):
        text = ctx.run(draft, topic, revision, notes)
        answer = ctx.ask_human(
            f"Publish this draft about {topic}?",
            data={"text": text, "revision": revision},
            schema=REVIEW_SCHEMA,
            assignees=reviewers or ["editors"],
        )
        if answer["approved"]:
            return {"outcome": "published", "rounds": revision + 1, **ctx.run(publish, text, answer["input"]["title"])}
        notes = answer["comment"]
    return {"outcome": "abandoned", "rounds": max_rounds}


@app.agent
def deadline(ctx: Context, on_timeout: str = "reject", timeout: float = 2.0) -> dict[str, Any]:
    """Asks with a two-second deadline; what happens then is ``on_timeout``'s policy."""
    groups: list[Any] = ["first-line", "second-line"]
    answer = ctx.ask_human("Approve within the deadline?", timeout=timeout, on_timeout=on_timeout, assignees=groups)
    return {"approved": answer["approved"], "timed_out": answer["timed_out"], "by": answer["by"]}


@app.agent
def panel(ctx: Context, reviewers: list[str]) -> dict[str, Any]:
    """Parallel approvals: one question per reviewer, continue when all have answered."""
    answers = ctx.ask_all([{"prompt": f"{r}: approve?", "assignees": [r]} for r in reviewers])
    return {"approvals": sum(1 for a in answers if a["approved"]), "by": sorted(a["by"] for a in answers)}


@app.agent
def hooked(ctx: Context, url: str, timeout: float = 4.0) -> dict[str, Any]:
    """An approval that notifies a webhook when it is created, answered or expires."""
    answer = ctx.ask_human("Approve (a webhook is told)?", timeout=timeout, on_timeout="approve", webhook=url)
    return {"approved": answer["approved"], "timed_out": answer["timed_out"], "by": answer["by"]}


# -- GPU -------------------------------------------------------------------------------------------


@app.task(device="gpu", fallback="cpu")
def similarity(ctx: TaskContext, a: list[list[float]], b: list[list[float]]) -> dict[str, Any]:
    """Batched cosine similarity: a numba.cuda kernel on a GPU worker, its numba CPU twin elsewhere."""
    from agentbus.memory.gpu import cosine_similarity

    matrix = cosine_similarity(a, b, gpu=ctx.device == "gpu")
    return {"device": ctx.device, "matrix": [[round(float(x), 6) for x in row] for row in matrix]}


@app.task(device="gpu")
def gpu_only(ctx: TaskContext, x: int) -> dict[str, Any]:
    """Waits for a GPU worker: no fallback."""
    return {"device": ctx.device, "x": x}


@app.task(device="gpu", gpu_memory="24GB", fallback="cpu")
def big_model(ctx: TaskContext, x: int) -> dict[str, Any]:
    """Needs a 24 GB device; on smaller ones it falls back to the CPU."""
    return {"device": ctx.device, "x": x}


@app.task(device="any")
def anywhere(ctx: TaskContext, x: int) -> dict[str, Any]:
    return {"device": ctx.device, "x": x}


@app.task(concurrency_key="model:{model}", max_concurrency=2)
def infer(ctx: TaskContext, model: str, i: int, seconds: float = 0.2) -> dict[str, Any]:
    """At most two calls per model run at once across the fleet; each reports when it ran."""
    start = time.time()
    time.sleep(seconds)
    return {"i": i, "start": start, "end": time.time()}


@app.agent
def batch_infer(ctx: Context, model: str = "m1", n: int = 8, seconds: float = 0.2) -> list[dict[str, Any]]:
    return ctx.map(infer, [{"model": model, "i": i, "seconds": seconds} for i in range(n)], unpack=True)


@app.agent
def stamp(ctx: Context, label: str, n: int = 3, seconds: float = 0.05) -> list[dict[str, Any]]:
    """n short calls that record when they ran (for priority tests)."""
    return ctx.map(timed, [{"label": label, "i": i, "seconds": seconds} for i in range(n)], unpack=True)


@app.task
def timed(ctx: TaskContext, label: str, i: int, seconds: float = 0.05) -> dict[str, Any]:
    start = time.time()
    time.sleep(seconds)
    return {"label": label, "i": i, "start": start, "end": time.time()}


# -- memory ----------------------------------------------------------------------------------------


@app.agent
def remember(ctx: Context, namespace: str, notes: list[str], query: str, k: int = 3) -> dict[str, Any]:
    """Store notes in agent memory, then search them (both are journaled steps run on workers)."""
    ids = ctx.memory.store(namespace, texts=notes, metadata=[{"n": i} for i in range(len(notes))])
    hits = ctx.memory.search(namespace, q=query, k=k)
    return {"stored": len(ids), "best": hits[0]["text"] if hits else None, "hits": [h["id"] for h in hits]}


@app.agent
def neighbours(ctx: Context, namespace: str, ids: list[str], k: int = 2) -> list[list[str]]:
    """Nearest stored neighbours of each item (memory.knn_batch: on a GPU worker when one is live)."""
    rows = ctx.memory.knn_batch(namespace, ids=ids, k=k)
    return [[h["id"] for h in row] for row in rows]


# -- waiting well: async tasks, many calls in flight (docs/workers.md) ------------------------------


async def fake_model_api(prompt: str, latency: float) -> str:
    """Stands for an HTTP call to a model server (no network here): the worker's event loop runs
    other calls while this one waits."""
    await asyncio.sleep(latency)
    return f"answer to {prompt!r}"


async def fake_model_stream(prompt: str, latency: float) -> AsyncIterator[str]:
    """The same fake model, streaming its answer token by token over ``latency`` seconds."""
    answer = await fake_model_api(prompt, 0.0)
    tokens = re.findall(r"\S+\s*", answer)
    for token in tokens:
        await asyncio.sleep(latency / len(tokens))
        yield token


@app.task(retries=2, timeout=60)
async def ask_model(ctx: TaskContext, prompt: str, latency: float = 0.5) -> str:
    """An ``async def`` task: runs as a coroutine, hundreds at once on one worker. Each token is
    emitted as it comes (``ctx.emit``: ``GET /jobs/{id}/events`` and ``submit --wait`` show it); the
    whole answer is the result."""
    tokens = []
    async for token in fake_model_stream(prompt, latency):
        ctx.emit({"token": token})
        tokens.append(token)
    return "".join(tokens)


@app.agent
def assistant(ctx: Context, questions: list[str], latency: float = 0.5) -> dict[str, Any]:
    """An agent that asks a (fake, local) model every question at once and gathers the answers."""
    ctx.emit({"progress": f"asking {len(questions)} questions"})
    answers = ctx.map(ask_model, [{"prompt": q, "latency": latency} for q in questions], unpack=True)
    ctx.emit({"progress": "all answered"})
    return {"answers": answers}


@app.task
def wait_sync(ctx: TaskContext, i: int, seconds: float = 0.5) -> int:
    """A sync task that waits (a blocking client library): runs on one of the worker's threads."""
    time.sleep(seconds)
    return i


@app.task
async def wait_async(ctx: TaskContext, i: int, seconds: float = 0.5) -> int:
    await asyncio.sleep(seconds)
    return i


@app.agent
def io_map(ctx: Context, n: int = 200, seconds: float = 0.5, mode: str = "async") -> dict[str, int]:
    """n calls that each wait ``seconds``, as ``async def`` (mode "async") or sync (mode "sync")."""
    items = [{"i": i, "seconds": seconds} for i in range(n)]
    values = ctx.map(wait_async, items, unpack=True) if mode == "async" else ctx.map(wait_sync, items, unpack=True)
    return {"n": len(values), "sum": sum(values)}


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
def long_waits(ctx: Context, tasks: int = 4, seconds: float = 30.0, mode: str = "async") -> list[float]:
    """Several long calls (async, or sync that check ``ctx.cancelled``): cancel it while they run."""
    return ctx.map(slow_async if mode == "async" else polite, [seconds] * tasks)


@app.task(worker_concurrency=2)
async def narrow(ctx: TaskContext, i: int, seconds: float = 0.2) -> dict[str, float]:
    """At most two calls of this task at once on one worker (``worker_concurrency``)."""
    start = time.time()
    await asyncio.sleep(seconds)
    return {"start": start, "end": time.time()}


@app.agent
def narrow_map(ctx: Context, n: int = 6, seconds: float = 0.2) -> list[dict[str, float]]:
    return ctx.map(narrow, [{"i": i, "seconds": seconds} for i in range(n)], unpack=True)


# -- streamed output: ctx.emit (docs/workers.md "Streamed output") ----------------------------------


@app.task(timeout=120)
async def chatter(ctx: TaskContext, n: int = 10, every: float = 0.01, delay: float = 0.0) -> int:
    """An async task that emits ``n`` tokens, ``every`` seconds apart (after ``delay`` seconds)."""
    await asyncio.sleep(delay)
    for i in range(n):
        ctx.emit({"token": f"t{i}"})
        await asyncio.sleep(every)
    return n


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
def narrator(ctx: Context, steps: int = 3) -> list[int]:
    """An agent that emits before and after each step: replayed once per step, each emit is sent once."""
    got = []
    for i in range(steps):
        ctx.emit({"step": i, "phase": "before"})
        got.append(ctx.run(square, i))
        ctx.emit({"step": i, "phase": "after"})
    return got


@app.agent
def clumsy(ctx: Context, x: int = 3) -> int:
    """Its own code raises once its task is done: the job fails with a traceback that names it."""
    squared: int = ctx.run(square, x)
    return squared // 0
