"""JSON that every part of agentbus can hold, and how to tell a value that is not.

Three things pass through Python's ``json`` but break later, where nobody can fix them:

- NaN and ±Infinity: not JSON. Python writes them as bare ``NaN``, no other parser reads them
  back, and the API's responses refuse them — one stored NaN makes every later read a 500.
- NUL (U+0000): PostgreSQL ``text`` and ``jsonb`` cannot hold it, so the write fails.
- A lone UTF-16 surrogate (U+D800..U+DFFF alone): it cannot be encoded as UTF-8, so a
  response that carries it fails.

Input from callers is refused where it enters (:func:`first_problem`, a 422 with the path of
the bad value). Values produced by agent and task code reach the store through
:func:`holdable`, which encodes them the way JavaScript's ``JSON.stringify`` does (NaN and
infinities become ``null``) and replaces lone surrogates with U+FFFD, so no result can poison
the reads that follow.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["first_problem", "holdable", "text_problem"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored or sent, or None."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    if _SURROGATE.search(text):
        return "contains a lone UTF-16 surrogate, which is not valid Unicode text"
    return None


def _value_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a JSON number (NaN and infinities have no JSON form)"
    return None


def first_problem(value: Any) -> tuple[list[str], str] | None:
    """The path and reason of the first part of ``value`` that JSON or PostgreSQL cannot hold."""
    stack: list[tuple[list[str], Any]] = [([], value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, dict):
            for k, item in v.items():
                key = str(k)
                problem = text_problem(key)
                if problem:
                    return [*path, json.dumps(key)[1:-1]], f"a key {problem}"  # escaped: the path is echoed
                stack.append(([*path, key], item))
        elif isinstance(v, list | tuple):
            stack.extend(([*path, str(i)], item) for i, item in enumerate(v))
        else:
            problem = _value_problem(v)
            if problem:
                return path, problem
    return None


def holdable(value: Any) -> Any:
    """``value`` with NaN/±Infinity as None and lone surrogates as U+FFFD (the rest unchanged)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {holdable(k) if isinstance(k, str) else k: holdable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [holdable(v) for v in value]
    return value
