"""The OpenAPI document: the paths derived from the route table (``api/table.py``), the shared
component schemas, and the input schema of every job type."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentbus import __version__
from agentbus.api.bodies import SubmitJob
from agentbus.api.operation import PUBLIC, Open, Operation, Reply
from agentbus.api.table import OPERATIONS
from agentbus.domain import App, CatchUp, JobState
from agentbus.domain.hitl import APPROVAL_STATES
from agentbus.domain.schedules import MAX_AHEAD_S

_ERROR = {"$ref": "#/components/schemas/Error"}
_ERRORS = {
    400: "malformed request",
    401: "missing, malformed, unknown, revoked or expired API key",
    403: "the API key lacks the route's scope",
    404: "not found",
    409: "conflict",
    413: "body too large",
    422: "input fails the schema",
    429: "over a rate limit or a tenant cap",
    503: "a dependency is unavailable",
}
ACCESS_NAMES = {PUBLIC: "no key", Open.ANY_KEY: "any key"}

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


def _reply(reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    if reply.schema is not None:
        out["content"] = {reply.media_type: {"schema": dict(reply.schema)}}
    return out


def _errors(op: Operation) -> list[int]:
    """The operation's own error statuses, and those its access brings: a key can be refused (401)
    and a caller limited (429); a route that needs a scope can be refused it (403)."""
    if op.access is PUBLIC:
        return sorted(op.errors)
    implied = {401, 429} if op.access is Open.ANY_KEY else {401, 403, 429}
    return sorted({*op.errors, *implied})


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary}
    if op.description:
        out["description"] = op.description
    out["operationId"] = op.operation_id
    if op.parameters:
        out["parameters"] = [dict(p) for p in op.parameters]
    if op.body is not None:
        schema = {"$ref": f"#/components/schemas/{op.body.__name__}"}
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    replies = {status: _reply(r) for status, r in op.replies.items()}
    out["responses"] = {**replies, **{str(c): _reply(Reply(_ERRORS[c], _ERROR)) for c in _errors(op)}}
    # Who may call it, as a vendor extension: an OpenAPI `security` requirement would have
    # schemathesis' negative mode count a request its own headers authorize as invalid.
    out["x-access"] = ACCESS_NAMES[op.access] if isinstance(op.access, Open) else op.access
    return out


def paths(operations: Sequence[Operation]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for op in operations:
        out.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return out


def document(app: App, operations: Sequence[Operation] = OPERATIONS) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for op in operations:  # the bodies operations read, by their model's name
        if op.body is not None:
            body = op.body.model_json_schema()
            schemas.update(body.pop("$defs", {}))
            schemas[op.body.__name__] = body
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
                    "run_at": {
                        "type": ["string", "number", "null"],
                        "description": "not before then: ISO 8601 with an offset, or unix seconds (past: now)",
                    },
                    "delay": {
                        "type": ["number", "null"],
                        "minimum": 0,
                        "maximum": MAX_AHEAD_S,
                        "description": "run it this many seconds from now (not with run_at)",
                    },
                },
            }
        )
    if variants:  # one variant per job type, each with its own input schema
        schemas[SubmitJob.__name__] = {"oneOf": variants}
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
                    "rerun_of": {"type": ["string", "null"], "description": "the job this one runs again"},
                    "run_at": {"type": ["string", "null"], "description": "a job for later: when it is due"},
                    "schedule_id": {"type": ["string", "null"], "description": "the schedule that made it"},
                    "schedule_tick": {"type": ["string", "null"], "description": "the schedule's tick it runs for"},
                    "created_at": {"type": "string"},
                    "started_at": {"type": ["string", "null"]},
                    "finished_at": {"type": ["string", "null"]},
                    "updated_at": {"type": "string"},
                    "error": _JOB_ERROR,
                    "progress": {"type": "object", "additionalProperties": {"type": "integer"}},
                },
            },
            "Schedule": {
                "type": "object",
                "required": ["id", "name", "agent", "cron", "timezone", "paused"],
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "agent": {"type": "string"},
                    "input": {"type": "object"},
                    "cron": {"type": "string"},
                    "timezone": {"type": "string"},
                    "catch_up": {"type": "string", "enum": [c.value for c in CatchUp]},
                    "paused": {"type": "boolean"},
                    "origin": {"type": "string", "enum": ["api", "app"]},
                    "next_run_at": {"type": ["string", "null"], "description": "the next tick (null while paused)"},
                    "upcoming": {"type": "array", "items": {"type": "string"}},
                    "last_run_at": {"type": ["string", "null"]},
                    "last_job_id": {"type": ["string", "null"]},
                    "created_at": {"type": "string"},
                    "updated_at": {"type": "string"},
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
    return {
        "openapi": "3.1.0",
        "info": {"title": "agentbus", "version": __version__},
        "paths": paths(operations),
        "components": {"schemas": schemas},
    }
