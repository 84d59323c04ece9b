"""The examples App that ships with agentbus, so that `agentbus dev` has something real to run.

Run any role with ``--app agentbus.examples:app`` (the default).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from agentbus.domain import AgentContext, App, TaskContext, TaskFailed

app = App("examples")


@app.task
def echo(ctx: TaskContext, message: str) -> str:
    """One task: returns its input."""
    return message


@app.task
def noop(ctx: TaskContext, i: int = 0) -> int:
    return i


@app.task
def square(ctx: TaskContext, x: int) -> int:
    return x * x


@app.task(retries=3, backoff=0.2)
def flaky(ctx: TaskContext, failures: int = 2) -> dict[str, int]:
    """Fails its first ``failures`` attempts, then succeeds: retries with backoff."""
    if ctx.attempt <= failures:
        raise RuntimeError(f"attempt {ctx.attempt} fails on purpose")
    return {"attempts": ctx.attempt}


@app.task
def always_fails(ctx: TaskContext, reason: str = "no luck") -> None:
    raise ValueError(reason)


@app.task(timeout=600)
def slow(ctx: TaskContext, seconds: float = 30.0) -> float:
    """A long task to cancel."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)
    return seconds


@app.task
def pause(ctx: TaskContext, x: int, seconds: float = 0.005) -> int:
    """Takes a little time, so that a job is still running when something breaks."""
    time.sleep(seconds)
    return x


@app.agent
def paced_map(ctx: AgentContext, n: int = 1000, seconds: float = 0.005) -> dict[str, int]:
    values = ctx.map(pause, [{"x": i, "seconds": seconds} for i in range(n)], unpack=True)
    return {"n": len(values), "sum": sum(values)}


@app.agent
def map_reduce(ctx: AgentContext, n: int = 100) -> dict[str, int]:
    """Fan-out/fan-in: square 0..n-1 in parallel tasks, sum the squares."""
    squares = ctx.map(square, range(n))
    return {"n": n, "sum": sum(squares)}


@app.agent
def noop_map(ctx: AgentContext, n: int = 10_000) -> int:
    """The benchmark's agent: n no-op tasks."""
    return len(ctx.map(noop, range(n)))


@app.agent
def parent(ctx: AgentContext, n: int = 10) -> dict[str, Any]:
    """An agent calling a sub-agent."""
    child = ctx.call_agent(map_reduce, n=n)
    echoed = ctx.run(echo, f"child summed {child['sum']}")
    return {"child": child, "echo": echoed}


@app.agent
def careful(ctx: AgentContext, reason: str = "no luck") -> dict[str, str]:
    """A task failure arrives in the agent as an exception it can catch."""
    try:
        ctx.run(always_fails, reason)
    except TaskFailed as exc:
        return {"caught": exc.error_type, "message": exc.error_message}
    return {"caught": "nothing"}


@app.agent
def retrying(ctx: AgentContext, failures: int = 2) -> dict[str, int]:
    out: dict[str, int] = ctx.run(flaky, failures)
    return out


@app.agent
def nap(ctx: AgentContext, seconds: float = 1.0) -> dict[str, float]:
    """A durable sleep: no worker is held while it waits."""
    start = ctx.now()
    ctx.sleep(seconds)
    return {"slept": ctx.now() - start}


@app.agent
def long_haul(ctx: AgentContext, tasks: int = 4, seconds: float = 30.0) -> list[float]:
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
def draft(ctx: TaskContext, topic: str, revision: int = 0, notes: str | None = None) -> str:
    text = f"Draft {revision + 1} about {topic}"
    return f"{text} (revised: {notes})" if notes else text


@app.task
def publish(ctx: TaskContext, text: str, title: str) -> dict[str, str]:
    return {"published": title, "text": text}


@app.agent
def editorial(ctx: AgentContext, topic: str, max_rounds: int = 3, reviewers: list[str] | None = None) -> dict[str, Any]:
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
def deadline(ctx: AgentContext, on_timeout: str = "reject", timeout: float = 2.0) -> dict[str, Any]:
    """Asks with a two-second deadline; what happens then is ``on_timeout``'s policy."""
    groups: list[Any] = ["first-line", "second-line"]
    answer = ctx.ask_human("Approve within the deadline?", timeout=timeout, on_timeout=on_timeout, assignees=groups)
    return {"approved": answer["approved"], "timed_out": answer["timed_out"], "by": answer["by"]}


# -- GPU -------------------------------------------------------------------------------------------


@app.task(device="gpu", fallback="cpu")
def similarity(ctx: TaskContext, a: list[list[float]], b: list[list[float]]) -> dict[str, Any]:
    """Batched cosine similarity: a numba.cuda kernel on a GPU worker, its numba CPU twin elsewhere."""
    from agentbus.memory.gpu import cosine_similarity

    matrix = cosine_similarity(a, b, gpu=ctx.device == "gpu")
    return {"device": ctx.device, "matrix": [[round(float(x), 6) for x in row] for row in matrix]}


@app.task(device="any")
def anywhere(ctx: TaskContext, x: int) -> dict[str, Any]:
    return {"device": ctx.device, "x": x}


# -- memory ----------------------------------------------------------------------------------------


@app.agent
def remember(ctx: AgentContext, namespace: str, notes: list[str], query: str, k: int = 3) -> dict[str, Any]:
    """Store notes in agent memory, then search them (both are journaled steps run on workers)."""
    ids = ctx.memory.store(namespace, texts=notes, metadata=[{"n": i} for i in range(len(notes))])
    hits = ctx.memory.search(namespace, q=query, k=k)
    return {"stored": len(ids), "best": hits[0]["text"] if hits else None, "hits": [h["id"] for h in hits]}


@app.agent
def neighbours(ctx: AgentContext, namespace: str, ids: list[str], k: int = 2) -> list[list[str]]:
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
def assistant(ctx: AgentContext, questions: list[str], latency: float = 0.5) -> dict[str, Any]:
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
def io_map(ctx: AgentContext, n: int = 200, seconds: float = 0.5, mode: str = "async") -> dict[str, int]:
    """n calls that each wait ``seconds``, as ``async def`` (mode "async") or sync (mode "sync")."""
    items = [{"i": i, "seconds": seconds} for i in range(n)]
    values = ctx.map(wait_async, items, unpack=True) if mode == "async" else ctx.map(wait_sync, items, unpack=True)
    return {"n": len(values), "sum": sum(values)}


# -- streamed output: ctx.emit (docs/workers.md "Streamed output") ----------------------------------


@app.task(timeout=120)
async def chatter(ctx: TaskContext, n: int = 10, every: float = 0.01, delay: float = 0.0) -> int:
    """An async task that emits ``n`` tokens, ``every`` seconds apart (after ``delay`` seconds)."""
    await asyncio.sleep(delay)
    for i in range(n):
        ctx.emit({"token": f"t{i}"})
        await asyncio.sleep(every)
    return n
