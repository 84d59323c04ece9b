"""Approvals: the questions agents put to people, and the answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from agentbus.api import render
from agentbus.api.bodies import Body, parse
from agentbus.api.routes import _limit, _publish, _state, json_body, tenant_of
from agentbus.api.state import ApiState
from agentbus.domain import ControlEvent, InvalidInput, Unavailable
from agentbus.domain.hitl import APPROVAL_STATES
from agentbus.domain.signals import check_against
from agentbus.store import ApprovalRecord


class AnswerApproval(Body):
    decision: Literal["approve", "reject"]
    input: Any = None
    comment: str | None = Field(default=None, max_length=10_000)
    by: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="who answers, as a note; the answering API key is recorded as answered_key",
    )


def _approval_id(request: Request) -> str:
    approval_id = str(request.path_params["approval_id"])
    if not (0 < len(approval_id) <= 160):
        raise InvalidInput("an approval id has 1 to 160 characters")
    return approval_id


def check_input(rec: ApprovalRecord, value: Any, decision: str) -> None:
    """Validate an answer's input against the schema the agent asked for (422 with the field path)."""
    if rec.schema is None or (decision == "reject" and value is None):
        return
    check_against(rec.schema, value, "input")


async def list_approvals(request: Request) -> JSONResponse:
    st = _state(request)
    q = request.query_params
    unknown = set(q) - {"status", "job", "assignee", "limit", "cursor"}
    if unknown:
        raise InvalidInput(f"unknown query parameters: {', '.join(sorted(unknown))}")
    status = q.get("status")
    if status is not None and status not in APPROVAL_STATES:
        raise InvalidInput(f"unknown status {status!r}; one of {', '.join(APPROVAL_STATES)}")
    limit, tenant = _limit(request), tenant_of(request)
    rows, cursor = await run_in_threadpool(
        lambda: st.approvals.list_approvals(
            status=status,
            job_id=q.get("job"),
            assignee=q.get("assignee"),
            limit=limit,
            cursor=q.get("cursor"),
            tenant=tenant,
        )
    )
    return JSONResponse({"approvals": [_render(r) for r in rows], "next_cursor": cursor})


async def get_approval(request: Request) -> JSONResponse:
    st = _state(request)
    rec = await run_in_threadpool(st.approvals.get_approval, _approval_id(request), tenant_of(request))
    return JSONResponse(_render(rec))


async def answer_approval(request: Request) -> JSONResponse:
    """Approve or reject. Exactly one answer wins; a second, or an answer to a closed one, is a 409."""
    st = _state(request)
    approval_id = _approval_id(request)
    body = parse(AnswerApproval, await json_body(request))
    tenant = tenant_of(request)
    rec = await run_in_threadpool(st.approvals.get_approval, approval_id, tenant)
    if rec.status == "pending":
        check_input(rec, body.input, body.decision)
    key_id = request.state.key_id
    answered = await run_in_threadpool(
        st.approvals.answer_approval,
        approval_id,
        body.decision == "approve",
        body.input,
        body.comment,
        body.by or f"key:{key_id}",
        tenant,
        key_id,
    )
    await run_in_threadpool(_publish, st, ControlEvent("job.advance", (answered.job_id,)))
    await run_in_threadpool(_changed, st, answered.job_id)
    return JSONResponse(_render(answered))


def _render(rec: ApprovalRecord) -> dict[str, Any]:
    return {**render.approval(rec), "answered_key": rec.answered_key}


def _changed(st: ApiState, job_id: str) -> None:
    try:
        st.notifier.changed([job_id])  # event streams of the job wake (a hint; the record decides)
    except Unavailable:
        pass
