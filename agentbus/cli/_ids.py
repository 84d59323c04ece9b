"""Ids as people type them: a whole id or a unique prefix of one."""

from __future__ import annotations

import json

from agentbus.client import Approval, Client, Job, schema
from agentbus.domain import InvalidInput, NotFound

SCAN_LIMIT = 5000  # how many of the newest jobs a prefix is looked for in


def unique(prefix: str, matches: list[str], what: str, scanned: str) -> str:
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFound(f"no {what} {prefix!r}, and no {what} id starts with it ({scanned})")
    shown = "\n  ".join(matches[:20]) + ("\n  ..." if len(matches) > 20 else "")
    raise InvalidInput(f"{prefix!r} is ambiguous: {len(matches)} {what}s start with it:\n  {shown}")


def resolve_job(c: Client, prefix: str) -> Job:
    """The job the id or unique id prefix names. The API has no prefix search: the prefix is
    looked for in the listing (newest first, SCAN_LIMIT at most), after trying it as a whole id."""
    try:
        return c.job(prefix)
    except NotFound:
        pass
    matches: list[str] = []
    for n, j in enumerate(c.iter_jobs(), 1):
        if j.id.startswith(prefix):
            matches.append(j.id)
        if n >= SCAN_LIMIT:
            break
    return c.job(unique(prefix, matches, "job", f"looked in the newest {SCAN_LIMIT} jobs"))


def resolve_approval(c: Client, prefix: str, *, pending: bool = False) -> Approval:
    """The approval the id or unique id prefix names (``pending``: among pending ones only, since
    only those can be answered; an approval's id starts with its job's, so a job id prefix works)."""
    try:
        return c.approval(prefix)
    except NotFound:
        pass
    status = "pending" if pending else None
    matches = [a.id for a in c.iter_approvals(status=status) if a.id.startswith(prefix)]
    what = "pending approval" if pending else "approval"
    return c.approval(unique(prefix, matches, what, f"looked in {'pending' if pending else 'all'} approvals"))


def answer_hint(a: Approval) -> str:
    """The commands that answer ``a``, with an example input when its question has a schema."""
    approve = f"agentbus approvals approve {a.id}"
    if a.schema:
        approve += f" --input '{json.dumps(schema.example(a.schema))}'"
    return f"  {approve}\n  agentbus approvals reject {a.id} --comment 'what to change'"
