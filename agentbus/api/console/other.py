"""The fleet, the job types with a submit form, and memory namespaces with a search box."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from agentbus.api.console import _forms
from agentbus.api.console._base import console, context, form_of, int_param, page, redirect, signed_in
from agentbus.api.console.jobs import submit
from agentbus.api.state import ApiState
from agentbus.domain import NotFound, ValidationFailed
from agentbus.services import MemoryService


def workers(st: ApiState) -> list[dict[str, Any]]:
    """What ``GET /workers`` answers: live ones from their heartbeats, then those lately lost."""
    live = st.fleet.workers()
    lost = st.fleet.lost()
    live_ids = {w.get("id") for w in live}
    out = [{**w, "status": "draining" if w.get("draining") else "live"} for w in live]
    out += [{**w, "status": "lost"} for w in lost if w.get("id") not in live_ids]
    # heartbeats list their ``calls`` (a worker with several slots), older ones one ``current`` call
    out = [{**w, "calls": _calls(w["calls"] if "calls" in w else w.get("current"))} for w in out]
    return sorted(out, key=lambda w: (w["status"], str(w.get("id"))))


def _calls(current: Any) -> list[dict[str, Any]]:
    """A heartbeat's current call (or calls, from a worker with several slots), each with its job."""
    found = current if isinstance(current, list) else [current] if isinstance(current, dict) else []
    out = []
    for c in found:
        if isinstance(c, dict):
            task_id = str(c.get("task_id", ""))
            out.append({**c, "job_id": c.get("job_id") or task_id.rpartition("-")[0]})
    return out


@signed_in("admin")
async def fleet(request: Request) -> Response:
    rows = await run_in_threadpool(workers, console(request).api)
    return page(request, "fleet.html", **context(request, workers=rows))


def job_types(st: ApiState) -> list[dict[str, Any]]:
    schemas = st.app.input_schemas()
    out = [
        {
            "name": n,
            "kind": "task",
            "device": td.options.device,
            "doc": (td.fn.__doc__ or "").strip(),
            "schema": schemas[n],
        }
        for n, td in sorted(st.app.tasks.items())
    ]
    out += [
        {"name": n, "kind": "agent", "device": "", "doc": (ad.fn.__doc__ or "").strip(), "schema": schemas[n]}
        for n, ad in sorted(st.app.agents.items())
    ]
    return out


@signed_in("jobs:read")
async def types(request: Request) -> Response:
    return page(request, "types.html", **context(request, types=job_types(console(request).api)))


def _type(st: ApiState, name: str) -> dict[str, Any]:
    found = [t for t in job_types(st) if t["name"] == name]
    if not found:
        raise NotFound(f"no job type {name!r}")
    return found[0]


@signed_in("jobs:read")
async def job_type(request: Request) -> Response:
    t = _type(console(request).api, str(request.path_params["name"]))
    return page(
        request,
        "type.html",
        **context(request, t=t, fields=_forms.fields(t["schema"]), pretty_schema=json.dumps(t["schema"], indent=2)),
    )


@signed_in("jobs:write")
async def submit_type(request: Request) -> Response:
    st = console(request).api
    t = _type(st, str(request.path_params["name"]))
    form = await form_of(request)
    try:
        data = _forms.value(t["schema"], form)
        rec = await run_in_threadpool(submit, st, t["name"], {} if data is None else data, request.state.tenant)
    except ValidationFailed as exc:
        return page(
            request,
            "type.html",
            422,
            **context(
                request,
                t=t,
                fields=_forms.fields(t["schema"]),
                pretty_schema=json.dumps(t["schema"], indent=2),
                error=exc.message,
                typed=form,
            ),
        )
    return redirect(f"/jobs/{rec.id}")


def _service(request: Request) -> MemoryService:
    svc: MemoryService = request.app.state.memory
    return svc


@signed_in("memory:read")
async def memory(request: Request) -> Response:
    rows = await run_in_threadpool(_service(request).namespaces, request.state.tenant)
    return page(request, "memory.html", **context(request, namespaces=rows, ns=None, hits=None, q=""))


@signed_in("memory:read")
async def namespace(request: Request) -> Response:
    svc = _service(request)
    tenant = request.state.tenant
    name = str(request.path_params["namespace"])[:120]
    q = request.query_params.get("q", "").strip()[:2000]
    k = max(1, min(100, int_param(request.query_params, "k", 10)))
    rows = await run_in_threadpool(svc.namespaces, tenant)
    if not any(r["name"] == name for r in rows):
        raise NotFound(f"no memory namespace {name!r}")
    hits = await run_in_threadpool(lambda: svc.search(tenant, name, q=q, k=k)) if q else None
    return page(request, "memory.html", **context(request, namespaces=rows, ns=name, hits=hits, q=q, k=k))
