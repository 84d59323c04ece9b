"""``GET /workers``: the fleet as its heartbeats describe it, and the workers lately lost."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from agentbus.api.routes import _state


async def list_workers(request: Request) -> JSONResponse:
    fleet = _state(request).fleet
    live = await run_in_threadpool(fleet.workers)
    lost = await run_in_threadpool(fleet.lost)
    live_ids = {w.get("id") for w in live}
    workers = [{**w, "status": "draining" if w.get("draining") else "live"} for w in live]
    workers += [{**w, "status": "lost"} for w in lost if w.get("id") not in live_ids]
    return JSONResponse({"workers": sorted(workers, key=lambda w: (w["status"], str(w.get("id"))))})
