"""``GET /jobs/{id}/events``: job, task and approval state changes as server-sent events.

The stream is built from the record, not from Redis. Job and approval changes come from
the job's event log (written in the same transactions as the changes, so none is missed);
task changes come from the steps themselves (a task's latest state: a poll may fold
queued → running → succeeded into one event). A stream reads the record when the job's
notice wakes it (bus/watch.py) or every RECHECK_S, holding no thread in between; each read
takes what changed since the last one, with a look-back window since transactions commit
out of timestamp order, and sends what this connection has not sent yet. Event ids are the change's timestamp; a client
reconnecting with ``Last-Event-ID`` gets the changes after that point. The stream ends
once the job has finished.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from agentbus.api.routes import _job_id, _state, tenant_of
from agentbus.api.waiting import job_notices
from agentbus.domain import InvalidInput
from agentbus.store import Store

LOOK_BACK_S = 2.0
# Each replay the orchestrator records is announced; a task starting, or finishing while others
# of its job are still open, is not: a stream also re-reads this often (jittered).
RECHECK_S = 2.0
SETTLE_S = 0.2
KEEPALIVE_S = 15.0


def _since(request: Request) -> float:
    raw = request.headers.get("last-event-id") or request.query_params.get("since")
    if raw is None:
        return 0.0
    try:
        since = float(raw)
    except ValueError:
        since = math.nan
    if not math.isfinite(since):  # "nan" or "1e400" parse, and a stream after them never sends an event
        raise InvalidInput(f"Last-Event-ID must be an event id from this stream, got {raw!r}")
    return since


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
        yield "retry: 1000\n\n"
        # No thread is held between reads: the stream sleeps on the job's notices (or a timer),
        # and starlette cancels it, leaving the watch, when the client goes away.
        async with job_notices(request, st.watch, job_id, RECHECK_S, follow_disconnect=False) as notice:
            last_sent = time.monotonic()
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
                if fresh:
                    last_sent = time.monotonic()
                elif time.monotonic() - last_sent >= KEEPALIVE_S:
                    last_sent = time.monotonic()
                    yield ": keep-alive\n\n"
                # once finished, one more read soon for changes that committed late; else wait
                await notice(SETTLE_S if finished else KEEPALIVE_S - (time.monotonic() - last_sent))

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
