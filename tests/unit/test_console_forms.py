"""The console's forms from a JSON Schema, and the submitted form back to JSON (pure)."""

from __future__ import annotations

import pytest

from agentbus.api.console import _forms
from agentbus.domain import InvalidInput
from agentbus.examples import REVIEW_SCHEMA

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "count": {"type": "integer", "default": 3},
        "ratio": {"type": "number"},
        "urgent": {"type": "boolean"},
        "colour": {"enum": ["red", 2, None]},
        "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
    },
    "required": ["title"],
}


def test_each_property_gets_a_control_of_its_type() -> None:
    got = {f.name: (f.control, f.required, f.default) for f in _forms.fields(SCHEMA)}
    assert got == {
        "title": ("text", True, ""),
        "count": ("integer", False, "3"),
        "ratio": ("number", False, ""),
        "urgent": ("checkbox", False, ""),
        "colour": ("select", False, ""),
        "tags": ("json", False, ""),
        "note": ("text", False, ""),
    }


def test_a_form_becomes_typed_json_and_empty_optional_fields_are_left_out() -> None:
    form = {"title": "T", "count": "4", "ratio": "0.5", "urgent": "on", "colour": "1", "tags": '["a"]', "note": ""}
    assert _forms.value(SCHEMA, form) == {
        "title": "T",
        "count": 4,
        "ratio": 0.5,
        "urgent": True,
        "colour": 2,
        "tags": ["a"],
    }
    assert _forms.value(SCHEMA, {"title": ""}) == {"title": "", "urgent": False}


def test_a_wrong_number_is_kept_as_typed_so_the_schema_check_names_the_field() -> None:
    assert _forms.value(REVIEW_SCHEMA, {"title": "x", "priority": "high"}) == {"title": "x", "priority": "high"}


def test_bad_json_is_a_clear_400() -> None:
    with pytest.raises(InvalidInput, match="tags is not valid JSON"):
        _forms.value(SCHEMA, {"title": "t", "tags": "[oops"})


def test_a_schema_that_is_not_a_flat_object_is_one_json_field() -> None:
    (only,) = _forms.fields({"type": "array"})
    assert only.name == _forms.WHOLE and only.control == "json"
    assert _forms.value({"type": "array"}, {_forms.WHOLE: "[1, 2]"}) == [1, 2]
    assert _forms.value(None, {_forms.WHOLE: ""}) is None
