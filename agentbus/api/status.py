"""``GET /status`` (admin): the cluster on one page — who holds the lease, queues, open jobs,
workers and their slots, recent failures. What ``agentbus status`` draws."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from agentbus.api import render
from agentbus.api.routes import _state
from agentbus.bus import lease_holder, lease_name, queue_depths
from agentbus.domain import JobState
from agentbus.observability.metrics import queue_labels

RECENT_FAILURES = 10


@dataclass(frozen=True)
class Sources:
    """What the status page reads from Redis besides the fleet (a raw connection: read-only)."""

    conn: Any
    shards: int = 1

    def lease(self) -> tuple[str | None, float]:
        return lease_holder(self.conn)

    def shard_leases(self) -> list[tuple[str | None, float]]:
        """Who holds each shard's lease (shard 0's is ``lease``), in shard order."""
        return [lease_holder(self.conn, lease_name(k)) for k in range(self.shards)]

    def queues(self) -> dict[str, tuple[int, float | None]]:
        return queue_depths(self.conn)


def _queues(raw: dict[str, tuple[int, float | None]], now: float) -> list[dict[str, Any]]:
    out = []
    for name, (depth, oldest) in sorted(raw.items()):
        queue, priority = queue_labels(name)
        age = None if oldest is None else round(max(0.0, now - oldest), 3)
        out.append({"queue": queue, "priority": priority, "depth": depth, "oldest_age_s": age})
    return out


async def cluster_status(request: Request) -> JSONResponse:
    st = _state(request)
    sources: Sources = request.app.state.status
    holder, ttl = await run_in_threadpool(sources.lease)
    shards = await run_in_threadpool(sources.shard_leases)
    queues = await run_in_threadpool(sources.queues)
    jobs = await run_in_threadpool(st.jobs.open_jobs_by_state)
    approvals = await run_in_threadpool(st.approvals.pending_approvals)
    live = await run_in_threadpool(st.fleet.workers)
    lost = await run_in_threadpool(st.fleet.lost)
    failed, _ = await run_in_threadpool(
        lambda: st.jobs.list_jobs(states=[JobState.FAILED.value], limit=RECENT_FAILURES, tenant=None)
    )
    live_ids = {w.get("id") for w in live}
    workers = [
        {
            "id": w.get("id"),
            "role": w.get("role"),
            "status": "lost" if lost_ else ("draining" if w.get("draining") else "live"),
            "busy": w.get("busy", 0),
            "free": w.get("free", 0),
            "done": w.get("done", 0),
            "failed": w.get("failed", 0),
            "seen": w.get("lost_at" if lost_ else "seen"),
        }
        for lost_, group in ((False, live), (True, [w for w in lost if w.get("id") not in live_ids]))
        for w in group
    ]
    body = {
        "orchestrator": {"lease_holder": holder, "lease_ttl_s": round(ttl, 3)},
        # --shards K: each shard's lease (docs/scaling.md); shard 0's is the lease above
        "shards": [{"shard": k, "holder": h, "lease_ttl_s": round(t, 3)} for k, (h, t) in enumerate(shards)],
        "queues": _queues(queues, time.time()),
        "jobs": jobs,
        "approvals_pending": approvals,
        "workers": sorted(workers, key=lambda w: (w["status"], str(w["id"]))),
        "recent_failures": [
            {**{k: render.job(r)[k] for k in ("id", "type", "error", "finished_at")}, "tenant": r.tenant}
            for r in failed
        ],
    }
    return JSONResponse(body)
