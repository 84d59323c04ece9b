"""App registration, input validation against type hints, and the input JSON Schemas."""

from __future__ import annotations

from typing import Any

import pytest

from agentbus.domain import App, ConfigError, Context, NotFound, TaskOptions, ValidationFailed

BUILTINS = {"memory.store", "memory.search", "memory.knn_batch"}  # every App has them


def make_app() -> App:
    app = App("test")

    @app.task(device="gpu", fallback="cpu", retries=2, timeout=30, queue="embed", backoff=1.0, chunk=8)
    def embed(ctx: Context, texts: list[str], normalize: bool = True) -> list[list[float]]:
        return []

    @app.agent
    def research(ctx: Context, topic: str, urls: list[str], depth: int = 2) -> dict[str, Any]:
        return {}

    return app


# -- registration -------------------------------------------------------------------------------


def test_registration_keeps_names_and_options() -> None:
    app = make_app()
    assert set(app.tasks) - BUILTINS == {"embed"}
    assert set(app.agents) == {"research"}
    assert app.tasks["embed"].options == TaskOptions("gpu", "cpu", 2, 30.0, "embed", 1.0, 8)
    assert app.job_type("research") is app.agents["research"]
    assert app.job_type("embed") is app.tasks["embed"]


def test_plain_decorator_and_explicit_name() -> None:
    app = App()

    @app.task
    def plain(ctx: Context) -> None: ...

    @app.task(name="renamed")
    def other(ctx: Context) -> None: ...

    @app.agent(name="boss")
    def agent(ctx: Context) -> None: ...

    assert set(app.tasks) - BUILTINS == {"plain", "renamed"}
    assert plain.options == TaskOptions()
    assert set(app.agents) == {"boss"}


def test_duplicate_names_are_a_config_error() -> None:
    app = make_app()

    with pytest.raises(ConfigError):

        @app.task(name="research")
        def clash(ctx: Context) -> None: ...

    with pytest.raises(ConfigError):

        @app.agent(name="embed")
        def clash2(ctx: Context) -> None: ...

    with pytest.raises(ConfigError):

        @app.task
        def embed(ctx: Context) -> None: ...


def test_include_refuses_a_name_already_registered() -> None:
    app = make_app()
    other = App("other")

    @other.task
    def embed(ctx: Context) -> None: ...

    with pytest.raises(ConfigError):
        app.include(other)

    fresh = App("fresh")
    fresh.include(make_app())
    assert set(fresh.tasks) - BUILTINS == {"embed"} and set(fresh.agents) == {"research"}


@pytest.mark.parametrize(
    "options",
    [
        {"device": "tpu"},
        {"fallback": "gpu"},
        {"retries": -1},
        {"timeout": 0},
        {"timeout": -5},
        {"backoff": -0.1},
        {"chunk": 0},
    ],
)
def test_bad_task_options_are_a_config_error(options: dict[str, Any]) -> None:
    app = App()
    with pytest.raises(ConfigError):
        app.task(**options)


# -- validation ---------------------------------------------------------------------------------


def test_valid_input_gets_its_defaults() -> None:
    app = make_app()
    assert app.validate_input("research", {"topic": "t", "urls": ["a"]}) == {"topic": "t", "urls": ["a"], "depth": 2}
    assert app.validate_input("embed", {"texts": []}) == {"texts": [], "normalize": True}


def test_unknown_field_is_rejected() -> None:
    app = make_app()
    with pytest.raises(ValidationFailed) as info:
        app.validate_input("research", {"topic": "t", "urls": [], "extra": 1})
    assert info.value.errors[0]["loc"] == ["input", "extra"]


def test_wrong_type_names_the_field_path() -> None:
    app = make_app()
    with pytest.raises(ValidationFailed) as info:
        app.validate_input("research", {"topic": "t", "urls": ["ok", 3]})
    locs = [e["loc"] for e in info.value.errors]
    assert ["input", "urls", "1"] in locs
    assert "input.urls.1" in info.value.message


def test_missing_required_field_is_reported() -> None:
    app = make_app()
    with pytest.raises(ValidationFailed) as info:
        app.validate_input("research", {"topic": "t"})
    assert info.value.errors[0]["loc"] == ["input", "urls"]
    assert info.value.errors[0]["type"] == "missing"


def test_input_that_is_not_an_object_is_rejected() -> None:
    app = make_app()
    for data in ([], "text", 3, None):
        with pytest.raises(ValidationFailed) as info:
            app.validate_input("research", data)
        assert info.value.errors[0]["loc"] == ["input"]


def test_validation_errors_are_invalid_input() -> None:
    from agentbus.domain import InvalidInput

    assert issubclass(ValidationFailed, InvalidInput)


# -- schemas and lookup -------------------------------------------------------------------------


def test_input_schemas_are_json_schema_with_required_fields() -> None:
    schemas = make_app().input_schemas()
    assert [n for n in schemas if n not in BUILTINS] == ["embed", "research"]
    research = schemas["research"]
    assert research["type"] == "object"
    assert research["additionalProperties"] is False
    assert sorted(research["required"]) == ["topic", "urls"]
    assert research["properties"]["urls"] == {"items": {"type": "string"}, "title": "Urls", "type": "array"}
    assert research["properties"]["depth"]["default"] == 2
    assert research["properties"]["topic"]["type"] == "string"
    assert schemas["embed"]["required"] == ["texts"]


def test_unknown_job_type_is_not_found_and_lists_known_names() -> None:
    app = make_app()
    with pytest.raises(NotFound) as info:
        app.job_type("nope")
    assert "embed" in info.value.message and "research" in info.value.message
    with pytest.raises(NotFound):
        app.validate_input("nope", {})
    with pytest.raises(NotFound):
        app.task_def("research")


def test_functions_that_cannot_describe_their_input_are_refused() -> None:
    app = App()
    with pytest.raises(TypeError):

        @app.task
        def variadic(ctx: Context, *args: int) -> None: ...

    with pytest.raises(TypeError):

        @app.agent
        def no_ctx() -> None: ...


def test_every_app_has_the_memory_builtins_and_including_another_app_keeps_one_copy() -> None:
    one, two = App("one"), App("two")
    assert set(one.tasks) >= BUILTINS
    assert one.tasks["memory.knn_batch"].options.device == "gpu"
    assert one.tasks["memory.knn_batch"].options.fallback == "cpu"
    one.include(two)
    assert set(one.tasks) >= BUILTINS
