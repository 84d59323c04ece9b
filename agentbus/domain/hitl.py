"""Human-in-the-loop requests: what an agent asks, and the policies for when nobody answers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from agentbus.domain.jsonsafe import text_problem
from agentbus.domain.states import ApprovalStatus

OnTimeout = Literal["reject", "approve", "escalate", "fail"]
ON_TIMEOUT: tuple[str, ...] = ("reject", "approve", "escalate", "fail")
APPROVAL_STATES: tuple[str, ...] = tuple(s.value for s in ApprovalStatus)


MAX_WEBHOOK_URL = 2048


def check_webhook_url(url: Any) -> str:
    """Raise ValueError unless ``url`` is an absolute http(s) URL with a host and a valid port.

    Checked when an agent asks (so a bad URL fails the agent's call with a clear message, not
    the delivery later); whether its host is public is checked at each delivery, against the
    addresses it resolves to then.
    """
    if not isinstance(url, str):
        raise ValueError("webhook must be an http(s) URL (a string)")
    if len(url) > MAX_WEBHOOK_URL:
        raise ValueError(f"webhook URL is over {MAX_WEBHOOK_URL} characters")
    if any(c.isspace() or not c.isprintable() for c in url):  # NUL and lone surrogates too
        raise ValueError(f"webhook URL {url[:80]!r} holds whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError as exc:
        raise ValueError(f"webhook URL {url[:80]!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook URL {url[:80]!r} is not an http(s) URL with a host")
    if port == 0:
        raise ValueError(f"webhook URL {url[:80]!r} has port 0")
    return url


@dataclass(frozen=True)
class HumanRequest:
    """One question for a person, as journaled and stored in the approvals table."""

    prompt: str
    data: Any = None
    schema: dict[str, Any] | None = None
    timeout: float | None = None
    on_timeout: OnTimeout = "reject"
    assignees: tuple[tuple[str, ...], ...] = ()
    webhook: str | None = None

    @classmethod
    def build(
        cls,
        prompt: str,
        data: Any = None,
        schema: dict[str, Any] | None = None,
        timeout: float | None = None,
        on_timeout: str = "reject",
        assignees: list[Any] | tuple[Any, ...] | None = None,
        webhook: str | None = None,
    ) -> HumanRequest:
        """Check and normalize what ``ctx.ask_human`` was given (raises ValueError)."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("ask_human needs a non-empty prompt")
        if on_timeout not in ON_TIMEOUT:
            raise ValueError(f"on_timeout must be one of {', '.join(ON_TIMEOUT)}, not {on_timeout!r}")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise ValueError("timeout must be a positive number of seconds, or None to wait for ever")
        if schema is not None and not isinstance(schema, dict):
            raise ValueError("schema must be a JSON Schema object (a dict)")
        groups: list[tuple[str, ...]] = []
        for g in assignees or ():
            members = (g,) if isinstance(g, str) else tuple(g)
            if not members or not all(isinstance(m, str) and m for m in members):
                raise ValueError("assignees is a list of groups: each a name or a list of names")
            groups.append(members)
        if on_timeout == "escalate" and (timeout is None or len(groups) < 2):
            raise ValueError("on_timeout='escalate' needs a timeout and at least two assignee groups")
        if webhook is not None:
            check_webhook_url(webhook)
        for text in (prompt, *(m for g in groups for m in g)):
            problem = text_problem(text)
            if problem:
                raise ValueError(f"ask_human: {text[:40]!r} {problem}")
        return cls(
            prompt,
            data,
            schema,
            None if timeout is None else float(timeout),
            on_timeout,  # type: ignore[arg-type]
            tuple(groups),
            webhook,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["assignees"] = [list(g) for g in self.assignees]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HumanRequest:
        return cls.build(**d)


def answer(
    approved: bool, input: Any, comment: str | None, by: str, at: str, timed_out: bool = False
) -> dict[str, Any]:
    """What ``ctx.ask_human`` returns to the agent."""
    return {"approved": approved, "input": input, "comment": comment, "by": by, "at": at, "timed_out": timed_out}
