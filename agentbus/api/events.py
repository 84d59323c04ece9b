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

Streamed output (``ctx.emit``) is not in the record: ``task.output`` events come from the job's
output stream in Redis (``bus/output.py``), read on this event loop when an output notice wakes
the stream (the record is re-read only on its own notices and timer). Each output has a number
``n`` in its job's stream; once a stream has sent one, every event id is ``<timestamp>/<n>``, so
``Last-Event-ID`` resumes both: changes after the timestamp, outputs after ``n``. Outputs the
stream no longer holds (trimmed past its cap, expired) or that a worker dropped are announced as
one ``task.output.dropped`` event with their ``count`` instead.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from agentbus.api.routes import _job_id, _state, tenant_of
from agentbus.api.state import ApiState
from agentbus.api.waiting import job_stream_notices
from agentbus.bus import JobWatch
from agentbus.domain import InvalidInput, Unavailable
from agentbus.domain.output import Output

log = logging.getLogger("agentbus.api")

LOOK_BACK_S = 2.0
# Each replay the orchestrator records is announced; a task starting, or finishing while others
# of its job are still open, is not: a stream also re-reads this often (jittered).
RECHECK_S = 2.0
SETTLE_S = 0.2
OUTPUT_PAGE = 1000


def _since(request: Request) -> tuple[float, int]:
    """The resume point: (changes after this timestamp, outputs after this number)."""
    raw = request.headers.get("last-event-id") or request.query_params.get("since")
    if raw is None:
        return 0.0, 0
    ts_part, slash, n_part = raw.partition("/")
    try:
        since = float(ts_part)
        after = int(n_part) if slash else 0
    except ValueError:
        since, after = math.nan, 0
    if not math.isfinite(since) or after < 0:  # "nan" or "1e400" parse, and a stream after them never sends an event
        raise InvalidInput(f"Last-Event-ID must be an event id from this stream, got {raw!r}")
    return since, after


def _frame(kind: str, ts: float, data: dict[str, Any], n: int = 0) -> str:
    event_id = f"{ts!r}/{n}" if n else repr(ts)
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _outputs(watch: JobWatch, job_id: str, after: int, ts: float) -> tuple[list[str], int]:
    """Frames of the job's outputs numbered above ``after``, and the new cursor (Redis away: none yet)."""
    frames: list[str] = []
    while True:
        try:
            page = await watch.outputs.read(job_id, after, OUTPUT_PAGE)
        except Unavailable as exc:
            log.debug("outputs of %s unreadable for now: %s", job_id, exc)
            return frames, after
        if page.missed:
            after += page.missed
            reason = "trimmed: the job's output stream keeps only its latest outputs"
            data = {"job_id": job_id, "count": page.missed, "reason": reason}
            frames.append(_frame("task.output.dropped", ts, data, after))
        for n, rec in page.records:
            after = n
            kind = "task.output" if isinstance(rec, Output) else "task.output.dropped"
            frames.append(_frame(kind, ts, {"job_id": job_id, **rec.to_dict(), "n": n}, n))
        if len(page.records) < OUTPUT_PAGE:
            return frames, after


def _poll(st: ApiState, job_id: str, since: float) -> tuple[list[tuple[float, str, str, dict[str, Any]]], bool]:
    """Job and approval changes from the event log (every one), task changes from the steps (latest state)."""
    job = st.jobs.get_job(job_id)
    out: list[tuple[float, str, str, dict[str, Any]]] = []
    for event_id, at, kind, data in st.events.job_events_since(job_id, since):
        out.append((at, kind, f"event:{event_id}", {"job_id": job_id, **data}))
    for s in st.steps.steps_changed_since(job_id, since):
        if s["kind"] == "task":
            key = f"task:{s['id']}:{s['state']}:{s['attempt']}"
            out.append((s["updated_at"], "task", key, {"job_id": job_id, **s}))
    out.sort(key=lambda e: e[0])
    return out, job.state.terminal


async def job_events(request: Request) -> StreamingResponse:
    st = _state(request)
    job_id = _job_id(request)
    since, out_after = _since(request)
    keepalive_s = st.settings.events_keepalive_s
    await run_in_threadpool(st.jobs.get_job, job_id, tenant_of(request))  # 404 before the stream starts

    async def stream() -> AsyncIterator[str]:
        sent: set[str] = set()
        last_status: str | None = None
        cursor = since
        id_ts, after = since, out_after  # the resume point the last event id told the client
        yield "retry: 1000\n\n"
        # No thread is held between reads: the stream sleeps on the job's notices (or a timer),
        # and starlette cancels it, leaving the watch, when the client goes away.
        async with job_stream_notices(st.watch, job_id, RECHECK_S) as wait:
            last_sent = time.monotonic()
            read_record, finished = True, False
            while True:
                fresh: list[tuple[float, str, str, dict[str, Any]]] = []
                if read_record:
                    events, finished = await run_in_threadpool(_poll, st, job_id, max(0.0, cursor - LOOK_BACK_S))
                    fresh = [e for e in events if e[2] not in sent and e[0] > since]
                for ts, kind, key, data in fresh:
                    sent.add(key)
                    cursor = max(cursor, ts)
                    if kind == "job":
                        if data["status"] == last_status:  # a replay that left the job as it was
                            continue
                        last_status = data["status"]
                    id_ts = ts
                    yield _frame(kind, ts, {"key": key, **data}, after)
                # outputs after the record: a call's outputs reach Redis before its outcome is written
                frames, after = await _outputs(st.watch, job_id, after, id_ts)
                for frame in frames:
                    yield frame
                if finished and read_record and not fresh and not frames:
                    yield "event: end\ndata: {}\n\n"
                    return
                if fresh or frames:
                    last_sent = time.monotonic()
                elif time.monotonic() - last_sent >= keepalive_s:
                    last_sent = time.monotonic()
                    yield ": keep-alive\n\n"
                # once finished, one more read soon for changes that committed late; else wait
                read_record, _ = await wait(SETTLE_S if finished else keepalive_s - (time.monotonic() - last_sent))

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
