"""Type hints → validation and JSON Schema, through pydantic."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from agentbus.domain.errors import ValidationFailed


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def parameters(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    """The parameters a caller supplies: every one but the leading ``ctx``."""
    params = list(inspect.signature(fn).parameters.values())
    if not params:
        raise TypeError(f"{fn.__qualname__} must take a Context as its first parameter")
    return params[1:]


def input_model(name: str, fn: Callable[..., Any]) -> type[BaseModel]:
    hints = get_type_hints(fn)
    fields: dict[str, Any] = {}
    for p in parameters(fn):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{fn.__qualname__}: *args/**kwargs cannot be described as job input")
        annotation = hints.get(p.name, Any)
        default = ... if p.default is p.empty else p.default
        fields[p.name] = (annotation, default)
    model: type[BaseModel] = create_model(f"{name}_input", __base__=_Strict, **fields)
    return model


def validate(model: type[BaseModel], data: Any) -> dict[str, Any]:
    """Validate ``data`` and return it as JSON-ready values, or raise ValidationFailed."""
    if not isinstance(data, dict):
        raise ValidationFailed("input must be a JSON object", [{"loc": ["input"], "msg": "expected an object"}])
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        raise validation_failed(exc, "input", ["input"]) from None
    dumped: dict[str, Any] = value.model_dump(mode="json")
    return dumped


def validate_json(model: type[BaseModel], text: str) -> None:
    """Raise ValidationFailed unless the JSON ``text`` is valid input (an agent's call, read as the
    callee will read it)."""
    try:
        model.model_validate_json(text)
    except ValidationError as exc:
        raise validation_failed(exc, "arguments", []) from None


def validation_failed(exc: ValidationError, what: str, prefix: list[str]) -> ValidationFailed:
    """pydantic's errors as a ValidationFailed (422) naming the first bad field, every error in its
    detail with ``loc`` under ``prefix``: the one shape of every validation error agentbus answers."""
    errors = [
        {"loc": [*prefix, *[str(x) for x in e["loc"]]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    first = errors[0]
    return ValidationFailed(f"invalid {what} at {'.'.join(first['loc']) or what}: {first['msg']}", errors)


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()
