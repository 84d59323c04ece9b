"""Request bodies: read within a size limit, parsed, validated with unknown fields refused."""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from agentbus.domain.errors import InvalidInput, PayloadTooLarge, ValidationFailed
from agentbus.domain.jsonsafe import first_problem
from agentbus.domain.schema import validation_failed

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SubmitJob(Body):
    type: str = Field(min_length=1, max_length=200, description="an agent or task name")
    input: dict[str, Any] = Field(default_factory=dict, description="the job type's input")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    priority: int = Field(default=0, ge=-10, le=10, description="higher runs first")
    run_at: str | float | None = Field(
        default=None, description="not before then: ISO 8601 with an offset, or unix seconds; a past time runs now"
    )
    delay: float | None = Field(default=None, description="run it this many seconds from now (not with run_at)")


def check_shape(value: Any, max_depth: int, max_array: int, depth: int = 0) -> None:
    """Refuse JSON nested deeper than ``max_depth`` or with an array longer than ``max_array``."""
    if depth > max_depth:
        raise PayloadTooLarge(f"JSON nested deeper than {max_depth} levels")
    if isinstance(value, list):
        if len(value) > max_array:
            raise PayloadTooLarge(f"a JSON array of {len(value)} items is over the limit of {max_array}")
        for item in value:
            check_shape(item, max_depth, max_array, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            check_shape(item, max_depth, max_array, depth + 1)


class _NotJsonNumber(ValueError):
    pass


def _constant(name: str) -> float:
    raise _NotJsonNumber(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf: it would be stored as Infinity
        raise _NotJsonNumber(f"the number {text[:40]} is out of the range of a float")
    return value


def decode_json(raw: bytes | str, max_depth: int = 32, max_array: int = 10_000) -> Any:
    """Parse JSON that agentbus can hold, or raise: malformed → InvalidInput (400); too deep or
    too long → PayloadTooLarge (413); NaN, ±Infinity, an overflowing number, a NUL character or
    a lone surrogate → ValidationFailed (422) naming where (see ``domain.jsonsafe``)."""
    try:
        value = json.loads(raw, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise PayloadTooLarge(f"JSON nested deeper than {max_depth} levels") from None
    except _NotJsonNumber as exc:
        raise ValidationFailed(
            f"invalid JSON: {exc}", [{"loc": ["body"], "msg": str(exc), "type": "json_number"}]
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from None
    check_shape(value, max_depth, max_array)
    problem = first_problem(value)
    if problem is not None:
        loc, msg = problem
        raise ValidationFailed(
            f"invalid body at {'.'.join(loc) or 'body'}: {msg}",
            [{"loc": loc or ["body"], "msg": msg, "type": "json_text"}],
        )
    return value


async def read_json(request: Request, limit: int, max_depth: int = 32, max_array: int = 10_000) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise InvalidInput("the request needs a JSON body")
    return decode_json(raw, max_depth, max_array)


def parse(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise ValidationFailed("the body must be a JSON object", [{"loc": ["body"], "msg": "expected an object"}])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_failed(exc, "body", []) from None
