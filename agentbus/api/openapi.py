"""The OpenAPI document: every route, and the input schema of every job type."""

from __future__ import annotations

from typing import Any

from agentbus import __version__
from agentbus.api.approvals import AnswerApproval
from agentbus.api.bodies import SubmitJob
from agentbus.api.memory import SearchMemory, StoreMemory
from agentbus.domain import App, JobState
from agentbus.domain.hitl import APPROVAL_STATES

_ERROR = {"$ref": "#/components/schemas/Error"}


def _resp(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


_JOB_ERROR: dict[str, Any] = {
    "type": ["object", "null"],
    "required": ["type", "message"],
    "properties": {
        "type": {"type": "string"},
        "message": {"type": "string"},
        # only where user code raised: the last 16 KiB of its traceback
        "traceback": {"type": "string", "description": "where the task's or agent's own code raised"},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "malformed request",
        404: "not found",
        409: "conflict",
        413: "body too large",
        422: "input fails the schema",
        429: "over a rate limit or a tenant cap",
        503: "a dependency is unavailable",
        401: "missing, malformed, unknown, revoked or expired API key",
        403: "the API key lacks the route's scope",
    }
    # every authenticated route may answer 401, 403 and 429
    return {str(c): _resp(text[c], _ERROR) for c in sorted({*codes, 401, 403, 429})}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def document(app: App) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    variants = []
    for name, schema in app.input_schemas().items():
        defs = schema.pop("$defs", {})
        schemas.update(defs)
        key = f"Input_{name}"
        schemas[key] = schema
        variants.append(
            {
                "type": "object",
                "title": f"SubmitJob_{name}",
                "required": ["type"],
                "additionalProperties": False,
                "properties": {
                    "type": {"type": "string", "enum": [name]},
                    "input": {"$ref": f"#/components/schemas/{key}"},
                    "idempotency_key": {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
                    "priority": {"type": "integer", "minimum": -10, "maximum": 10, "default": 0},
                },
            }
        )
    body_schema = SubmitJob.model_json_schema()
    schemas["SubmitJob"] = {"oneOf": variants} if variants else body_schema
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 120}}
    job_ref = {"$ref": "#/components/schemas/Job"}
    approval_ref = {"$ref": "#/components/schemas/Approval"}
    approval_id = {
        "name": "approval_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "maxLength": 160},
    }
    schemas["AnswerApproval"] = AnswerApproval.model_json_schema()
    for model in (StoreMemory, SearchMemory):
        body = model.model_json_schema()
        schemas.update(body.pop("$defs", {}))
        schemas[model.__name__] = body
    namespace = {"name": "namespace", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 120}}
    item_id = {"name": "item_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 200}}
    hits = {
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
    schemas["Approval"] = {
        "type": "object",
        "required": ["id", "job_id", "status", "prompt"],
        "properties": {
            "id": {"type": "string"},
            "job_id": {"type": "string"},
            "status": {"type": "string", "enum": list(APPROVAL_STATES)},
            "prompt": {"type": "string"},
            "data": {},
            "schema": {"type": ["object", "null"]},
            "assignees": {"type": "array", "items": {"type": "string"}},
            "level": {"type": "integer"},
            "deadline": {"type": ["string", "null"]},
            "decision": {"type": ["string", "null"]},
            "input": {},
            "comment": {"type": ["string", "null"]},
            "answered_by": {"type": ["string", "null"]},
            "answered_key": {"type": ["string", "null"], "description": "the API key id that answered"},
        },
    }
    schemas.update(
        {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["status", "type", "message"],
                        "properties": {
                            "status": {"type": "integer"},
                            "type": {"type": "string"},
                            "message": {"type": "string"},
                            "errors": {"type": "array", "items": {"type": "object"}},
                        },
                    }
                },
            },
            "Job": {
                "type": "object",
                "required": ["id", "type", "status", "input", "created_at"],
                "properties": {
                    "id": {"type": "string"},
                    "type": {"type": "string"},
                    "status": {"type": "string", "enum": [s.value for s in JobState]},
                    "input": {"type": "object"},
                    "priority": {"type": "integer"},
                    "idempotency_key": {"type": ["string", "null"]},
                    "parent_id": {"type": ["string", "null"]},
                    "created_at": {"type": "string"},
                    "started_at": {"type": ["string", "null"]},
                    "finished_at": {"type": ["string", "null"]},
                    "updated_at": {"type": "string"},
                    "error": _JOB_ERROR,
                    "progress": {"type": "object", "additionalProperties": {"type": "integer"}},
                },
            },
            "Results": {
                "type": "object",
                "required": ["id", "status"],
                "properties": {
                    "id": {"type": "string"},
                    "status": {"type": "string"},
                    "result": {},
                    "error": _JOB_ERROR,
                },
            },
        }
    )
    paths: dict[str, Any] = {
        "/jobs": {
            "post": {
                "summary": "Submit a job",
                "operationId": "submit_job",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SubmitJob"}}},
                },
                "responses": {
                    "201": _resp("created", job_ref),
                    "200": _resp("the job of this idempotency key", job_ref),
                    **_errors(400, 404, 409, 413, 422, 503),
                },
            },
            "get": {
                "summary": "List jobs, newest first",
                "operationId": "list_jobs",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "comma-separated states",
                    },
                    {"name": "type", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _resp(
                        "a page of jobs",
                        {
                            "type": "object",
                            "properties": {
                                "jobs": {"type": "array", "items": job_ref},
                                "next_cursor": {"type": ["string", "null"]},
                            },
                        },
                    ),
                    **_errors(400, 503),
                },
            },
        },
        "/jobs/{job_id}": {
            "get": {
                "summary": "A job with its progress",
                "operationId": "get_job",
                "parameters": [job_id],
                "responses": {"200": _resp("the job", job_ref), **_errors(400, 404, 503)},
            }
        },
        "/jobs/{job_id}/results": {
            "get": {
                "summary": "The result (or error) of a finished job",
                "operationId": "get_results",
                "parameters": [
                    job_id,
                    {
                        "name": "wait",
                        "in": "query",
                        "schema": {"type": "number", "minimum": 0, "maximum": 60},
                        "description": "long-poll: wait up to this many seconds for the job to finish",
                    },
                ],
                "responses": {
                    "200": _resp("finished", {"$ref": "#/components/schemas/Results"}),
                    "202": _resp("not finished yet", {"$ref": "#/components/schemas/Results"}),
                    **_errors(400, 404, 503),
                },
            }
        },
        "/jobs/{job_id}/cancel": {
            "post": {
                "summary": "Cancel a job: pending tasks are cancelled, running ones stopped",
                "operationId": "cancel_job",
                "parameters": [job_id],
                "responses": {"200": _resp("cancelled", job_ref), **_errors(400, 404, 409, 503)},
            }
        },
        "/jobs/{job_id}/events": {
            "get": {
                "summary": "Job, task and approval state changes as server-sent events (Last-Event-ID resumes)",
                "description": (
                    "Events `job`, `task`, `approval`, then `end` once the job has finished. Streamed output "
                    "(`ctx.emit` in tasks and agents) arrives as `task.output` events: `{job_id, task_id, name, "
                    "attempt, seq, data, at, n}`, `seq` numbering a call's outputs from 0 and `n` the job's. "
                    "Outputs a reader can no longer get (trimmed past the job's buffer, expired, or dropped by "
                    "a worker) are told as `task.output.dropped`: `{job_id, count, reason}` (with `task_id` and "
                    "`attempt` when a worker dropped them). Event ids are `<time>` or, once an output was "
                    "sent, `<time>/<n>`: `Last-Event-ID` resumes changes after the time and outputs after `n`. "
                    "Outputs are best-effort and not stored in PostgreSQL: the result is the record."
                ),
                "operationId": "job_events",
                "parameters": [job_id],
                "responses": {
                    "200": {
                        "description": "an event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_errors(400, 404, 503),
                },
            }
        },
        "/approvals": {
            "get": {
                "summary": "Questions agents asked people, newest first",
                "operationId": "list_approvals",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(APPROVAL_STATES)}},
                    {"name": "job", "in": "query", "schema": {"type": "string"}},
                    {"name": "assignee", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _resp(
                        "a page of approvals",
                        {
                            "type": "object",
                            "properties": {
                                "approvals": {"type": "array", "items": approval_ref},
                                "next_cursor": {"type": ["string", "null"]},
                            },
                        },
                    ),
                    **_errors(400, 503),
                },
            }
        },
        "/approvals/{approval_id}": {
            "get": {
                "summary": "One approval",
                "operationId": "get_approval",
                "parameters": [approval_id],
                "responses": {"200": _resp("the approval", approval_ref), **_errors(400, 404, 503)},
            },
            "post": {
                "summary": "Approve or reject; exactly one answer wins, the others get 409",
                "operationId": "answer_approval",
                "parameters": [approval_id],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AnswerApproval"}}},
                },
                "responses": {"200": _resp("answered", approval_ref), **_errors(400, 404, 409, 413, 422, 503)},
            },
        },
        "/jobs/{job_id}/tasks": {
            "get": {
                "summary": "A job's tasks with their queue and routing reason, a page at a time",
                "operationId": "job_tasks",
                "parameters": [
                    job_id,
                    {"name": "after", "in": "query", "schema": {"type": "integer"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                ],
                "responses": {"200": _resp("a page of tasks", {"type": "object"}), **_errors(400, 404, 503)},
            }
        },
        "/workers": {
            "get": {
                "summary": "The fleet: live, draining and lately lost workers with their devices",
                "operationId": "list_workers",
                "responses": {"200": _resp("workers", {"type": "object"}), **_errors(503)},
            }
        },
        "/memory/store": {
            "post": {
                "summary": "Upsert a batch of memory items (all or nothing); returns their ids",
                "operationId": "memory_store",
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref("StoreMemory")}}},
                "responses": {"201": _resp("stored", {"type": "object"}), **_errors(400, 413, 422, 429, 503)},
            }
        },
        "/memory/search": {
            "get": {
                "summary": "The k items nearest a text query, with an optional JSON metadata filter",
                "operationId": "memory_search_get",
                "parameters": [
                    {
                        "name": "namespace",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    },
                    {"name": "q", "in": "query", "schema": {"type": "string"}},
                    {"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "filter", "in": "query", "schema": {"type": "string"}, "description": "JSON"},
                    {
                        "name": "mode",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["vector", "hybrid"], "default": "vector"},
                        "description": "hybrid: BM25 over the text fused with the vector ranking (RRF)",
                    },
                ],
                "responses": {"200": _resp("hits", hits), **_errors(400, 404, 422, 503)},
            },
            "post": {
                "summary": "The k items nearest a text or a vector, with an optional metadata filter",
                "operationId": "memory_search",
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref("SearchMemory")}}},
                "responses": {"200": _resp("hits", hits), **_errors(400, 404, 413, 422, 503)},
            },
        },
        "/memory/namespaces": {
            "get": {
                "summary": "The tenant's memory namespaces with their item counts",
                "operationId": "memory_namespaces",
                "responses": {"200": _resp("namespaces", {"type": "object"}), **_errors(503)},
            }
        },
        "/memory/{namespace}/{item_id}": {
            "get": {
                "summary": "One memory item",
                "operationId": "memory_get",
                "parameters": [namespace, item_id],
                "responses": {"200": _resp("the item", {"type": "object"}), **_errors(400, 404, 503)},
            },
            "delete": {
                "summary": "Delete one memory item",
                "operationId": "memory_delete",
                "parameters": [namespace, item_id],
                "responses": {"200": _resp("deleted", {"type": "object"}), **_errors(400, 404, 503)},
            },
        },
        "/memory/{namespace}": {
            "delete": {
                "summary": "Delete a namespace and its items",
                "operationId": "memory_delete_namespace",
                "parameters": [namespace],
                "responses": {"200": _resp("deleted", {"type": "object"}), **_errors(400, 404, 503)},
            }
        },
        "/job-types": {
            "get": {
                "summary": "Registered agents and tasks with their input schemas",
                "operationId": "job_types",
                "responses": {"200": _resp("job types", {"type": "object"})},
            }
        },
        "/status": {
            "get": {
                "summary": "The cluster on one page: lease holder, queues, open jobs, workers, recent failures (admin)",
                "operationId": "cluster_status",
                "responses": {"200": _resp("status", {"type": "object"}), **_errors(503)},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "operationId": "healthz",
                "responses": {"200": _resp("alive", {"type": "object"})},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: PostgreSQL and Redis answer",
                "operationId": "readyz",
                "responses": {"200": _resp("ready", {"type": "object"}), "503": _resp("not ready", {"type": "object"})},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {"200": _resp("OpenAPI 3.1", {"type": "object"})},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "agentbus", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas},
    }
