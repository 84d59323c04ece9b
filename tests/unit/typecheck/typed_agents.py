"""Correct agent code that mypy must accept, with the types it must infer (``tests/unit/test_typed_calls.py``).

Not a test module: mypy reads it, nothing runs it.
"""

from __future__ import annotations

from typing import Any, reveal_type

from agentbus import AgentContext, App, TaskContext

app = App("typed")


@app.task
def score(ctx: TaskContext, text: str, weight: int = 1) -> int:
    return len(text) * weight * ctx.attempt


@app.task(retries=2, device="gpu", fallback="cpu")
async def summarize(ctx: TaskContext, text: str) -> str:
    return text[:10]


@app.agent
def child(ctx: AgentContext, n: int) -> list[int]:
    return [n]


@app.agent
def agent(ctx: AgentContext, text: str) -> dict[str, Any]:
    a = ctx.run(score, text)
    b = ctx.run(score, text, weight=2)
    c = ctx.run(summarize, text)
    d = ctx.call_agent(child, 3)
    h = ctx.start(score, text)
    e = ctx.gather(h, ctx.start(score, "x"))
    f = ctx.wait_any(h).result()
    g = ctx.map(score, ["a", "b"])
    hits = ctx.memory.search("notes", q=text)
    mixed = ctx.gather(ctx.start(score, text), ctx.start(summarize, text))  # handles of different types
    reveal_type(a)  # R1
    reveal_type(b)  # R2
    reveal_type(c)  # R3
    reveal_type(d)  # R4
    reveal_type(h)  # R5
    reveal_type(e)  # R6
    reveal_type(f)  # R7
    reveal_type(g)  # R8
    reveal_type(hits)  # R9
    reveal_type(score(ctx, "direct"))  # R10
    reveal_type(mixed)  # R11
    return {"mixed": mixed, "a": a + b, "c": c.upper(), "d": d, "e": e, "f": f, "g": g, "hits": hits}
