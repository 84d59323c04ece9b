"""The one exception tree of agentbus.

::

    AgentbusError
     ├── InvalidInput             the caller sent something malformed (HTTP 400)
     │    └── ValidationFailed    well-formed but fails the schema (422), with field paths
     ├── PayloadTooLarge          over a configured size limit (413)
     ├── Unauthorized             no, a malformed, unknown, revoked or expired API key (401)
     ├── Forbidden                the key lacks the scope the route needs (403)
     ├── RateLimited              over a rate limit or a tenant cap (429), with when to retry
     ├── NotFound                 no such job, job type, task (404)
     ├── Conflict                 the request contradicts the current state (409)
     │    ├── IdempotencyConflict a key reused with a different request
     │    └── IllegalTransition   a state change the state machine forbids
     ├── Unavailable              a dependency (PostgreSQL, Redis) does not answer (503)
     ├── ConfigError              bad settings or an App that cannot be loaded
     ├── MessageRejected          a bus message that is unsigned, tampered, expired or unknown
     └── StepError                raised inside agents and tasks
          ├── TaskFailed          a task failed for good; agents may catch it
     │    └── SignalTimeout  no signal came for ``ctx.wait_for`` within its timeout
          ├── TaskTimeout         a task ran past its timeout
          ├── TaskCancelled       the task or its job was cancelled
          ├── NonDeterministicAgent  a replay diverged from the journal
          ├── TooManyTasks        a job asked for more steps than max_tasks_per_job
          └── NotInAgent          an agent-only call (ctx.run, ...) made inside a task

Errors of dependencies (peewee, redis) are translated into this tree by the
package that owns the dependency. ``HTTP_STATUS`` below is the one table between
the tree and HTTP statuses: the API answers with it, the Python client reads
error responses back into the tree with it.
"""

from __future__ import annotations

from typing import Any


class AgentbusError(Exception):
    """Root of every error agentbus raises on purpose."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(AgentbusError):
    pass


class ValidationFailed(InvalidInput):
    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, errors=errors or [])
        self.errors = errors or []


class PayloadTooLarge(AgentbusError):
    pass


class Unauthorized(AgentbusError):
    pass


class Forbidden(AgentbusError):
    pass


class RateLimited(AgentbusError):
    def __init__(self, message: str, retry_after: float, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after
        self.headers = headers or {}


class NotFound(AgentbusError):
    pass


class Conflict(AgentbusError):
    pass


class IdempotencyConflict(Conflict):
    pass


class IllegalTransition(Conflict):
    pass


class Unavailable(AgentbusError):
    pass


class ConfigError(AgentbusError):
    pass


class MessageRejected(AgentbusError):
    pass


class StepError(AgentbusError):
    pass


class TaskFailed(StepError):
    """A task failed for good (its retries exhausted). Carries the task's own error."""

    def __init__(self, task: str, error_type: str, error_message: str, error_traceback: str | None = None) -> None:
        super().__init__(f"task {task!r} failed: {error_type}: {error_message}")
        self.task = task
        self.error_type = error_type
        self.error_message = error_message
        self.error_traceback = error_traceback  # the task's own, where it raised (None if not recorded)


class SignalTimeout(TaskFailed):
    """``ctx.wait_for(name, timeout=...)`` ran out of time: a TaskFailed (error type ``SignalTimeout``),
    so an agent catching either catches it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(name, "SignalTimeout", message)
        self.signal = name


class TaskTimeout(StepError):
    pass


class TaskCancelled(StepError):
    pass


class NonDeterministicAgent(StepError):
    pass


class TooManyTasks(StepError):
    """A job asked for more steps than the cap allows; raised as the step past the cap is asked for,
    so that a huge fan-out is never built in full."""


class NotInAgent(StepError):
    pass


# The one table between the tree and HTTP statuses, most specific class first.
HTTP_STATUS: tuple[tuple[type[AgentbusError], int], ...] = (
    (ValidationFailed, 422),
    (InvalidInput, 400),
    (PayloadTooLarge, 413),
    (Unauthorized, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    (NotFound, 404),
    (Conflict, 409),
    (Unavailable, 503),
)


def http_status(exc: AgentbusError) -> int:
    """The status the API answers ``exc`` with (500 for errors that should never reach a caller)."""
    return next((code for cls, code in HTTP_STATUS if isinstance(exc, cls)), 500)


def error_class(status: int, name: str | None = None) -> type[AgentbusError]:
    """The class an error response stands for: the one ``name`` (the body's ``type``) names if it is a
    subclass of the status's class (``IdempotencyConflict`` for a 409), else the status's class."""
    base = next((cls for cls, code in HTTP_STATUS if code == status), AgentbusError)
    stack: list[type[AgentbusError]] = [base]
    while stack and name:
        cls = stack.pop()
        if cls.__name__ == name:
            return cls
        stack.extend(cls.__subclasses__())
    return base
