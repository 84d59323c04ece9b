"""The approvals inbox: the signed-in tenant's questions, a form per question, answers and their races."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from agentbus.api.approvals import check_input
from agentbus.api.console import _forms
from agentbus.api.console._base import console, context, form_of, page, redirect, signed_in
from agentbus.api.console.jobs import publish
from agentbus.api.state import ApiState
from agentbus.domain import Conflict, ControlEvent, InvalidInput, ValidationFailed
from agentbus.domain.hitl import APPROVAL_STATES
from agentbus.store import ApprovalRecord

PAGE = 20


def _listing(st: ApiState, tenant: str, status: str, assignee: str, cursor: str | None) -> dict[str, Any]:
    rows, nxt = st.approvals.list_approvals(
        status=status, assignee=assignee or None, limit=PAGE, cursor=cursor, tenant=tenant
    )
    return {"approvals": rows, "next_cursor": nxt, "forms": {a.id: _forms.fields(a.schema) for a in rows}}


async def _inbox(request: Request, status_code: int = 200, **extra: Any) -> Response:
    st = console(request).api
    q = request.query_params
    status = q.get("status", "pending")
    if status not in APPROVAL_STATES:
        raise InvalidInput(f"unknown status {status!r}; one of {', '.join(APPROVAL_STATES)}")
    assignee = q.get("assignee", "")[:200]
    listing = await run_in_threadpool(_listing, st, request.state.tenant, status, assignee, q.get("cursor") or None)
    return page(
        request,
        "approvals.html",
        status_code,
        **context(
            request,
            status=status,
            assignee=assignee,
            statuses=APPROVAL_STATES,
            notice=q.get("notice"),
            **listing,
            **extra,
        ),
    )


@signed_in("jobs:read")
async def approvals(request: Request) -> Response:
    return await _inbox(request)


def _answer(st: ApiState, approval_id: str, tenant: str, form: dict[str, str], key_id: str) -> ApprovalRecord:
    """What ``POST /approvals/{id}`` does, from a form: the schema check, one winning answer, resume."""
    decision = form.get("decision")
    if decision not in ("approve", "reject"):
        raise InvalidInput("choose approve or reject")
    rec = st.approvals.get_approval(approval_id, tenant)
    value = _forms.value(rec.schema, form) if decision == "approve" or rec.schema is None else None
    if rec.status == "pending":
        check_input(rec, value, decision)
    comment = form.get("comment", "").strip()[:10_000] or None
    by = form.get("by", "").strip()[:200] or f"key:{key_id}"
    answered = st.approvals.answer_approval(approval_id, decision == "approve", value, comment, by, tenant, key_id)
    publish(st, ControlEvent("job.advance", (answered.job_id,)))
    return answered


@signed_in("approvals:write")
async def answer(request: Request) -> Response:
    st = console(request).api
    approval_id = str(request.path_params["approval_id"])[:160]
    form = await form_of(request)
    tenant = request.state.tenant
    try:
        rec = await run_in_threadpool(_answer, st, approval_id, tenant, form, request.state.key_id)
    except Conflict:
        # Someone answered first (or the deadline passed): say who and what, and keep the inbox.
        current = await run_in_threadpool(st.approvals.get_approval, approval_id, tenant)
        return await _inbox(request, 409, lost=current)
    except ValidationFailed as exc:
        return await _inbox(request, 422, invalid=(approval_id, exc.message), typed=form)
    return redirect(f"/approvals?notice={rec.status}:{rec.id}")
