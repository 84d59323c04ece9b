"""The route table: every API operation, once, with its handler, its scope and its schema.

The starlette routes, the scope each request needs (``api/auth.py``) and the paths of
``/openapi.json`` (``api/openapi.py``) are derived from ``TABLE``; the web console under
``/ui`` is mounted beside it with its own cookie sign-in (``api/console``).
"""

from __future__ import annotations

from typing import Any

from agentbus.api import approvals, events, fleet, memory, routes, schedules, signals, status
from agentbus.api.approvals import AnswerApproval
from agentbus.api.bodies import SubmitJob
from agentbus.api.memory import SearchMemory, StoreMemory
from agentbus.api.operation import ANY_KEY, PUBLIC, Operation, Reply, RouteTable
from agentbus.api.schedules import CreateSchedule
from agentbus.api.signals import SignalPayload
from agentbus.domain.hitl import APPROVAL_STATES


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _path(name: str, max_length: int) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": max_length}}


def _query(name: str, schema: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, **more}


JOB_ID = _path("job_id", 120)
APPROVAL_ID = _path("approval_id", 160)
SCHEDULE_ID = _path("schedule_id", 40)
SIGNAL_NAME = _path("name", 100)
NAMESPACE = _path("namespace", 120)
ITEM_ID = _path("item_id", 200)
LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 200})
CURSOR = _query("cursor", {"type": "string"})
OBJECT = {"type": "object"}
JOB = ref("Job")
APPROVAL = ref("Approval")
SCHEDULE = ref("Schedule")
RESULTS = ref("Results")
SIGNAL = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "job_id": {"type": "string"},
        "name": {"type": "string"},
        "payload": {},
        "status": {"type": "string", "enum": ["pending", "delivered"]},
        "step": {"type": ["integer", "null"]},
        "idempotency_key": {"type": ["string", "null"]},
        "created_at": {"type": "string"},
        "delivered_at": {"type": ["string", "null"]},
    },
}


def _page(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: {"type": "array", "items": item}, "next_cursor": {"type": ["string", "null"]}},
    }


HITS = {
    "type": "object",
    "properties": {
        "namespace": {"type": "string"},
        "hits": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "text": {"type": ["string", "null"]},
                    "metadata": {"type": "object"},
                    "score": {"type": "number"},
                },
            },
        },
    },
}

EVENTS_DESCRIPTION = (
    "Events `job`, `task`, `approval`, `signal`, then `end` once the job has finished. Streamed output "
    "(`ctx.emit` in tasks and agents) arrives as `task.output` events: `{job_id, task_id, name, "
    "attempt, seq, data, at, n}`, `seq` numbering a call's outputs from 0 and `n` the job's. "
    "Outputs a reader can no longer get (trimmed past the job's buffer, expired, or dropped by "
    "a worker) are told as `task.output.dropped`: `{job_id, count, reason}` (with `task_id` and "
    "`attempt` when a worker dropped them). Event ids are `<time>` or, once an output was "
    "sent, `<time>/<n>`: `Last-Event-ID` resumes changes after the time and outputs after `n`. "
    "Outputs are best-effort and not stored in PostgreSQL: the result is the record."
)

OPERATIONS = (
    # -- jobs --------------------------------------------------------------------------------------
    Operation(
        "POST",
        "/jobs",
        routes.submit_job,
        "jobs:write",
        "submit_job",
        "Submit a job",
        {"201": Reply("created", JOB), "200": Reply("the job of this idempotency key", JOB)},
        errors=(400, 404, 409, 413, 422, 503),
        body=SubmitJob,
    ),
    Operation(
        "GET",
        "/jobs",
        routes.list_jobs,
        "jobs:read",
        "list_jobs",
        "List jobs, newest first",
        {"200": Reply("a page of jobs", _page("jobs", JOB))},
        errors=(400, 503),
        parameters=(
            _query("status", {"type": "string"}, description="comma-separated states"),
            _query("type", {"type": "string"}),
            LIMIT,
            CURSOR,
        ),
    ),
    Operation(
        "GET",
        "/jobs/{job_id}",
        routes.get_job,
        "jobs:read",
        "get_job",
        "A job with its progress",
        {"200": Reply("the job", JOB)},
        errors=(400, 404, 503),
        parameters=(JOB_ID,),
    ),
    Operation(
        "GET",
        "/jobs/{job_id}/results",
        routes.get_results,
        "jobs:read",
        "get_results",
        "The result (or error) of a finished job",
        {"200": Reply("finished", RESULTS), "202": Reply("not finished yet", RESULTS)},
        errors=(400, 404, 503),
        parameters=(
            JOB_ID,
            _query(
                "wait",
                {"type": "number", "minimum": 0, "maximum": 60},
                description="long-poll: wait up to this many seconds for the job to finish",
            ),
        ),
    ),
    Operation(
        "POST",
        "/jobs/{job_id}/cancel",
        routes.cancel_job,
        "jobs:write",
        "cancel_job",
        "Cancel a job: pending tasks are cancelled, running ones stopped",
        {"200": Reply("cancelled", JOB)},
        errors=(400, 404, 409, 503),
        parameters=(JOB_ID,),
    ),
    Operation(
        "POST",
        "/jobs/{job_id}/rerun",
        routes.rerun_job,
        "jobs:write",
        "rerun_job",
        "Run a finished job again: a new job with its type, input and priority, linked by rerun_of",
        {"201": Reply("the new job", JOB)},
        errors=(400, 404, 409, 429, 503),
        parameters=(JOB_ID,),
    ),
    Operation(
        "POST",
        "/jobs/{job_id}/resume",
        routes.resume_job,
        "jobs:write",
        "resume_job",
        "Resume a failed job: its failed steps get a new attempt, the steps that succeeded are kept",
        {"200": Reply("running again", JOB)},
        errors=(400, 404, 409, 503),
        parameters=(JOB_ID,),
    ),
    Operation(
        "GET",
        "/jobs/{job_id}/events",
        events.job_events,
        "jobs:read",
        "job_events",
        "Job, task and approval state changes as server-sent events (Last-Event-ID resumes)",
        {"200": Reply("an event stream", {"type": "string"}, "text/event-stream")},
        errors=(400, 404, 503),
        parameters=(JOB_ID,),
        description=EVENTS_DESCRIPTION,
    ),
    Operation(
        "GET",
        "/jobs/{job_id}/tasks",
        routes.job_tasks,
        "jobs:read",
        "job_tasks",
        "A job's tasks with their queue and routing reason, a page at a time",
        {"200": Reply("a page of tasks", OBJECT)},
        errors=(400, 404, 503),
        parameters=(JOB_ID, _query("after", {"type": "integer"}), LIMIT),
    ),
    Operation(
        "POST",
        "/jobs/{job_id}/signals/{name}",
        signals.send_signal,
        "jobs:write",
        "send_signal",
        "Send a signal to a job: kept until a ctx.wait_for(name) takes it, each signal once",
        {"202": Reply("accepted", SIGNAL), "200": Reply("the signal of this Idempotency-Key", SIGNAL)},
        errors=(400, 404, 409, 413, 422, 503),
        parameters=(
            JOB_ID,
            SIGNAL_NAME,
            {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 200}},
        ),
        body=SignalPayload,
    ),
    Operation(
        "GET",
        "/jobs/{job_id}/signals",
        signals.list_signals,
        "jobs:read",
        "list_signals",
        "A job's signals in the order they arrived, delivered or pending",
        {
            "200": Reply(
                "the signals", {"type": "object", "properties": {"signals": {"type": "array", "items": SIGNAL}}}
            )
        },
        errors=(400, 404, 503),
        parameters=(JOB_ID,),
    ),
    Operation(
        "GET",
        "/job-types",
        routes.job_types,
        "jobs:read",
        "job_types",
        "Registered agents and tasks with their input schemas",
        {"200": Reply("job types", OBJECT)},
    ),
    # -- schedules ---------------------------------------------------------------------------------
    Operation(
        "POST",
        "/schedules",
        schedules.create_schedule,
        "jobs:write",
        "create_schedule",
        "Run an agent on a cron schedule in a time zone (exactly one job per tick)",
        {"201": Reply("created", SCHEDULE)},
        errors=(400, 409, 413, 422, 503),
        body=CreateSchedule,
    ),
    Operation(
        "GET",
        "/schedules",
        schedules.list_schedules,
        "jobs:read",
        "list_schedules",
        "The tenant's schedules by name",
        {
            "200": Reply(
                "a page of schedules",
                {
                    "type": "object",
                    "properties": {
                        "schedules": {"type": "array", "items": SCHEDULE},
                        "next_after": {"type": ["string", "null"]},
                    },
                },
            )
        },
        errors=(400, 503),
        parameters=(LIMIT, _query("after", {"type": "string"}, description="the last name of the previous page")),
    ),
    Operation(
        "GET",
        "/schedules/{schedule_id}",
        schedules.get_schedule,
        "jobs:read",
        "get_schedule",
        "A schedule with its next ticks",
        {"200": Reply("the schedule", SCHEDULE)},
        errors=(400, 404, 503),
        parameters=(SCHEDULE_ID,),
    ),
    Operation(
        "POST",
        "/schedules/{schedule_id}/pause",
        schedules.pause_schedule,
        "jobs:write",
        "pause_schedule",
        "Pause a schedule: no tick fires until it is resumed",
        {"200": Reply("paused", SCHEDULE)},
        errors=(400, 404, 503),
        parameters=(SCHEDULE_ID,),
    ),
    Operation(
        "POST",
        "/schedules/{schedule_id}/resume",
        schedules.resume_schedule,
        "jobs:write",
        "resume_schedule",
        "Resume a schedule from its next tick (ticks during the pause are skipped)",
        {"200": Reply("running", SCHEDULE)},
        errors=(400, 404, 503),
        parameters=(SCHEDULE_ID,),
    ),
    Operation(
        "DELETE",
        "/schedules/{schedule_id}",
        schedules.delete_schedule,
        "jobs:write",
        "delete_schedule",
        "Delete a schedule (the jobs it made are kept)",
        {"200": Reply("deleted", OBJECT)},
        errors=(400, 404, 503),
        parameters=(SCHEDULE_ID,),
    ),
    # -- approvals ---------------------------------------------------------------------------------
    Operation(
        "GET",
        "/approvals",
        approvals.list_approvals,
        "jobs:read",
        "list_approvals",
        "Questions agents asked people, newest first",
        {"200": Reply("a page of approvals", _page("approvals", APPROVAL))},
        errors=(400, 503),
        parameters=(
            _query("status", {"type": "string", "enum": list(APPROVAL_STATES)}),
            _query("job", {"type": "string"}),
            _query("assignee", {"type": "string"}),
            LIMIT,
            CURSOR,
        ),
    ),
    Operation(
        "GET",
        "/approvals/{approval_id}",
        approvals.get_approval,
        "jobs:read",
        "get_approval",
        "One approval",
        {"200": Reply("the approval", APPROVAL)},
        errors=(400, 404, 503),
        parameters=(APPROVAL_ID,),
    ),
    Operation(
        "POST",
        "/approvals/{approval_id}",
        approvals.answer_approval,
        "approvals:write",
        "answer_approval",
        "Approve or reject; exactly one answer wins, the others get 409",
        {"200": Reply("answered", APPROVAL)},
        errors=(400, 404, 409, 413, 422, 503),
        parameters=(APPROVAL_ID,),
        body=AnswerApproval,
    ),
    # -- memory ------------------------------------------------------------------------------------
    Operation(
        "POST",
        "/memory/store",
        memory.store,
        "memory:write",
        "memory_store",
        "Upsert a batch of memory items (all or nothing); returns their ids",
        {"201": Reply("stored", OBJECT)},
        errors=(400, 413, 422, 429, 503),
        body=StoreMemory,
    ),
    Operation(
        "GET",
        "/memory/search",
        memory.search_get,
        "memory:read",
        "memory_search_get",
        "The k items nearest a text query, with an optional JSON metadata filter",
        {"200": Reply("hits", HITS)},
        errors=(400, 404, 422, 503),
        parameters=(
            _query("namespace", {"type": "string", "minLength": 1}, required=True),
            _query("q", {"type": "string"}),
            _query("k", {"type": "integer", "minimum": 1, "maximum": 1000}),
            _query("filter", {"type": "string"}, description="JSON"),
            _query(
                "mode",
                {"type": "string", "enum": ["vector", "hybrid"], "default": "vector"},
                description="hybrid: BM25 over the text fused with the vector ranking (RRF)",
            ),
        ),
    ),
    Operation(
        "POST",
        "/memory/search",
        memory.search_post,
        "memory:read",  # a search changes nothing, whatever its method
        "memory_search",
        "The k items nearest a text or a vector, with an optional metadata filter",
        {"200": Reply("hits", HITS)},
        errors=(400, 404, 413, 422, 503),
        body=SearchMemory,
    ),
    Operation(
        "GET",
        "/memory/namespaces",
        memory.list_namespaces,
        "memory:read",
        "memory_namespaces",
        "The tenant's memory namespaces with their item counts",
        {"200": Reply("namespaces", OBJECT)},
        errors=(503,),
    ),
    Operation(
        "GET",
        "/memory/{namespace}/{item_id}",
        memory.get_item,
        "memory:read",
        "memory_get",
        "One memory item",
        {"200": Reply("the item", OBJECT)},
        errors=(400, 404, 503),
        parameters=(NAMESPACE, ITEM_ID),
    ),
    Operation(
        "DELETE",
        "/memory/{namespace}/{item_id}",
        memory.delete_item,
        "memory:write",
        "memory_delete",
        "Delete one memory item",
        {"200": Reply("deleted", OBJECT)},
        errors=(400, 404, 503),
        parameters=(NAMESPACE, ITEM_ID),
    ),
    Operation(
        "DELETE",
        "/memory/{namespace}",
        memory.delete_namespace,
        "memory:write",
        "memory_delete_namespace",
        "Delete a namespace and its items",
        {"200": Reply("deleted", OBJECT)},
        errors=(400, 404, 503),
        parameters=(NAMESPACE,),
    ),
    # -- the cluster (admin) -----------------------------------------------------------------------
    Operation(
        "GET",
        "/workers",
        fleet.list_workers,
        "admin",
        "list_workers",
        "The fleet: live, draining and lately lost workers with their devices",
        {"200": Reply("workers", OBJECT)},
        errors=(503,),
    ),
    Operation(
        "GET",
        "/status",
        status.cluster_status,
        "admin",
        "cluster_status",
        "The cluster on one page: lease holder, queues, open jobs, workers, recent failures (admin)",
        {"200": Reply("status", OBJECT)},
        errors=(503,),
    ),
    # -- probes and this document ------------------------------------------------------------------
    Operation("GET", "/healthz", routes.healthz, PUBLIC, "healthz", "Liveness", {"200": Reply("alive", OBJECT)}),
    Operation(
        "GET",
        "/readyz",
        routes.readyz,
        PUBLIC,
        "readyz",
        "Readiness: PostgreSQL and Redis answer",
        {"200": Reply("ready", OBJECT), "503": Reply("not ready", OBJECT)},
    ),
    Operation(
        "GET",
        "/openapi.json",
        routes.openapi,
        ANY_KEY,
        "openapi",
        "This document",
        {"200": Reply("OpenAPI 3.1", OBJECT)},
    ),
)

TABLE = RouteTable(OPERATIONS)
