"""Human-in-the-loop requests: what an agent asks, and the policies for when nobody answers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

OnTimeout = Literal["reject", "approve", "escalate", "fail"]
ON_TIMEOUT: tuple[str, ...] = ("reject", "approve", "escalate", "fail")
APPROVAL_STATES: tuple[str, ...] = ("pending", "approved", "rejected", "expired", "cancelled")


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
        if webhook is not None and not (isinstance(webhook, str) and webhook.startswith(("http://", "https://"))):
            raise ValueError("webhook must be an http(s) URL")
        return cls(prompt, data, schema, None if timeout is None else float(timeout), on_timeout,  # type: ignore[arg-type]
                   tuple(groups), webhook)  # fmt: skip

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
