"""Signals: ``POST /jobs/{id}/signals/{name}`` sends one to a job, ``GET /jobs/{id}/signals`` lists them.

The signal is kept in PostgreSQL and handed to the wait that takes it in the same transaction
(``store/signals.py``); the ``job.advance`` sent after it only wakes the orchestrator sooner.
"""

from __future__ import annotations

from typing import Any

from pydantic import RootModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from agentbus.api import render
from agentbus.api.routes import _job_id, _publish, _state, json_body, tenant_of
from agentbus.api.state import ApiState
from agentbus.domain import ControlEvent, InvalidInput, Unavailable
from agentbus.domain.signals import MAX_IDEMPOTENCY_KEY, check_signal_name


class SignalPayload(RootModel[Any]):
    """Any JSON value: what ``ctx.wait_for`` returns to the agent."""


def _key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(f"an Idempotency-Key has 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return key


async def send_signal(request: Request) -> JSONResponse:
    """202 with the signal (kept, or already delivered); 200 with the earlier one for a repeated
    Idempotency-Key; 409 for a finished job; 422 when the open wait's schema refuses the payload."""
    st = _state(request)
    job_id, tenant = _job_id(request), tenant_of(request)
    name = check_signal_name(str(request.path_params["name"]))
    key = _key(request)
    payload = await json_body(request)
    rec, created = await run_in_threadpool(lambda: st.signals.send(job_id, name, payload, tenant=tenant, key=key))
    if created:
        await run_in_threadpool(_wake, st, job_id)
    return JSONResponse(render.signal(rec), status_code=202 if created else 200)


async def list_signals(request: Request) -> JSONResponse:
    st = _state(request)
    rows = await run_in_threadpool(st.signals.list_signals, _job_id(request), tenant_of(request))
    return JSONResponse({"signals": [render.signal(r) for r in rows]})


def _wake(st: ApiState, job_id: str) -> None:
    """Hints only: a lost one is made good by the reconciler, which replays jobs left running."""
    _publish(st, ControlEvent("job.advance", (job_id,)))
    try:
        st.notifier.changed([job_id])  # the job's event streams show the signal at once
    except Unavailable:
        pass
