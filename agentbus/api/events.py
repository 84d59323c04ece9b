"""``GET /jobs/{id}/events``: job, task and approval state changes as server-sent events.

The stream is built from the record, not from Redis. Job and approval changes come from
the job's event log (written in the same transactions as the changes, so none is missed);
task changes come from the steps themselves (a task's latest state: a poll may fold
queued → running → succeeded into one event). Each poll reads what changed since the last
one, with a look-back window since transactions commit out of timestamp order, and sends
what this connection has not sent yet. Event ids are the change's timestamp; a client
reconnecting with ``Last-Event-ID`` gets the changes after that point. The stream ends
once the job has finished.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from agentbus.api.routes import _job_id, _state, tenant_of
from agentbus.domain import InvalidInput
from agentbus.store import Store

LOOK_BACK_S = 2.0
POLL_S = 0.2
KEEPALIVE_S = 15.0


def _since(request: Request) -> float:
    raw = request.headers.get("last-event-id") or request.query_params.get("since")
    if raw is None:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(f"Last-Event-ID must be an event id from this stream, got {raw!r}") from None


def _frame(kind: str, ts: float, data: dict[str, Any]) -> str:
    return f"id: {ts!r}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _poll(store: Store, job_id: str, since: float) -> tuple[list[tuple[float, str, str, dict[str, Any]]], bool]:
    """Job and approval changes from the event log (every one), task changes from the steps (latest state)."""
    job = store.get_job(job_id)
    out: list[tuple[float, str, str, dict[str, Any]]] = []
    for event_id, at, kind, data in store.job_events_since(job_id, since):
        out.append((at, kind, f"event:{event_id}", {"job_id": job_id, **data}))
    for s in store.steps_changed_since(job_id, since):
        if s["kind"] == "task":
            key = f"task:{s['id']}:{s['state']}:{s['attempt']}"
            out.append((s["updated_at"], "task", key, {"job_id": job_id, **s}))
    out.sort(key=lambda e: e[0])
    return out, job.state.terminal


async def job_events(request: Request) -> StreamingResponse:
    st = _state(request)
    job_id = _job_id(request)
    since = _since(request)
    await run_in_threadpool(st.store.get_job, job_id, tenant_of(request))  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        sent: set[str] = set()
        last_status: str | None = None
        cursor = since
        quiet = 0.0
        yield "retry: 1000\n\n"
        while True:
            events, finished = await run_in_threadpool(_poll, st.store, job_id, max(0.0, cursor - LOOK_BACK_S))
            fresh = [e for e in events if e[2] not in sent and e[0] > since]
            for ts, kind, key, data in fresh:
                sent.add(key)
                cursor = max(cursor, ts)
                if kind == "job":
                    if data["status"] == last_status:  # a replay that left the job as it was
                        continue
                    last_status = data["status"]
                yield _frame(kind, ts, {"key": key, **data})
            if finished and not fresh:
                yield "event: end\ndata: {}\n\n"
                return
            quiet = 0.0 if fresh else quiet + POLL_S
            if quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield ": keep-alive\n\n"
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
