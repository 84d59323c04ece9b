"""Each setting declared once; ``agentbus config`` shows what is in effect; docs/configuration.md matches the code."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentbus.cli import cli
from agentbus.config import Settings
from agentbus.config._fields import declared
from agentbus.config.reference import effective, markdown, option_help
from agentbus.config.sections import SECTIONS, Orchestrator, Webhooks
from agentbus.domain import ConfigError

DOCS = Path(__file__).parents[2] / "docs" / "configuration.md"
EVERY_VARIABLE = [spec.env for section in SECTIONS for _, spec in declared(section)]


def test_docs_configuration_md_is_generated_from_the_code() -> None:
    assert DOCS.read_text() == markdown(), "regenerate it: python -m agentbus.config > docs/configuration.md"


def test_every_setting_belongs_to_exactly_one_section() -> None:
    # dataclass inheritance would merge two sections' fields of one name without a word
    names = [f.name for section in SECTIONS for f in fields(section)]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(f.name for f in fields(Settings))


def test_every_setting_has_its_own_variable_and_help() -> None:
    assert len(EVERY_VARIABLE) == len(set(EVERY_VARIABLE))
    for section in SECTIONS:
        assert section.__doc__, section.__name__
        for f, spec in declared(section):
            assert spec.env.startswith("AGENTBUS_") and spec.env.isupper(), f.name
            assert spec.help, f.name


def test_the_defaults_pass_their_own_checks() -> None:
    Settings().check()
    assert Settings.from_env({}) == Settings()


def test_shards_is_an_orchestrator_setting_of_at_least_one() -> None:
    assert Settings().shards == 1
    assert Settings.from_env({"AGENTBUS_SHARDS": "4"}).section(Orchestrator).shards == 4
    with pytest.raises(ConfigError, match="AGENTBUS_SHARDS"):
        Settings.from_env({"AGENTBUS_SHARDS": "0"})


def test_a_section_alone_carries_the_same_values() -> None:
    s = Settings.from_env({"AGENTBUS_LEASE_TTL": "3", "AGENTBUS_WEBHOOK_ALLOW_PRIVATE": "true"})
    assert s.section(Orchestrator) == Orchestrator(lease_ttl_s=3.0)
    assert s.section(Webhooks).webhook_allow_private is True
    with pytest.raises(TypeError):
        s.section(Settings)


def test_effective_settings_say_where_each_value_came_from() -> None:
    entries = {e.env: e for e in effective({"AGENTBUS_LEASE_TTL": "3", "AGENTBUS_DISPATCH_CHUNK": " "})}
    assert set(entries) == set(EVERY_VARIABLE)
    assert (entries["AGENTBUS_LEASE_TTL"].value, entries["AGENTBUS_LEASE_TTL"].source) == (3.0, "env")
    assert (entries["AGENTBUS_DISPATCH_CHUNK"].value, entries["AGENTBUS_DISPATCH_CHUNK"].source) == (256, "default")
    assert entries["AGENTBUS_LEASE_TTL"].section == "orchestrator"


SECRETS = {
    "AGENTBUS_SECRET": "s3cret-s3cret-s3cret-s3cret-s3cret",
    "AGENTBUS_WEBHOOK_SECRET": "whsec-hunter2",
    "AGENTBUS_API_KEY": "ab_0123456789ab_secretpart",
    "AGENTBUS_DATABASE_URL": "postgresql://agentbus:pgpass99@db:5432/agentbus",
    "AGENTBUS_REDIS_URL": "redis://:redispass77@cache:6379/0",
}


def test_secrets_are_masked_and_urls_keep_all_but_their_password() -> None:
    entries = {e.env: e.value for e in effective(SECRETS)}
    assert entries["AGENTBUS_SECRET"] == entries["AGENTBUS_WEBHOOK_SECRET"] == entries["AGENTBUS_API_KEY"] == "***"
    assert entries["AGENTBUS_DATABASE_URL"] == "postgresql://agentbus:***@db:5432/agentbus"
    assert entries["AGENTBUS_REDIS_URL"] == "redis://:***@cache:6379/0"
    assert effective({})[0].value == "sqlite:///.agentbus/agentbus.db"
    assert {e.env: e.value for e in effective({})}["AGENTBUS_API_KEY"] == ""  # unset: nothing to hide


def _invoke(*args: str, env: dict[str, str]) -> str:
    unset: dict[str, str | None] = dict.fromkeys(EVERY_VARIABLE)
    result = CliRunner().invoke(cli, list(args), env={**unset, **env})
    assert result.exit_code == 0, result.output
    return result.output


def test_agentbus_config_json_lists_every_setting_with_no_secret_in_it() -> None:
    out = _invoke("config", "-o", "json", env={**SECRETS, "AGENTBUS_TRUSTED_PROXIES": "10.0.0.0/8,fd00::/8"})
    settings = {s["env"]: s for s in json.loads(out)["settings"]}
    assert set(settings) == set(EVERY_VARIABLE)
    assert settings["AGENTBUS_TRUSTED_PROXIES"] == {
        "section": "api",
        "name": "trusted_proxies",
        "env": "AGENTBUS_TRUSTED_PROXIES",
        "value": ["10.0.0.0/8", "fd00::/8"],
        "source": "env",
    }
    assert settings["AGENTBUS_LEASE_TTL"]["source"] == "default"
    for secret in ("s3cret", "hunter2", "secretpart", "pgpass99", "redispass77"):
        assert secret not in out


def test_agentbus_config_table_names_each_variable_and_its_source() -> None:
    env = {"AGENTBUS_SECRET": SECRETS["AGENTBUS_SECRET"], "AGENTBUS_LEASE_TTL": "3", "AGENTBUS_RETENTION": "7d"}
    out = _invoke("config", env=env)
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip().startswith("AGENTBUS_")}
    assert lines["AGENTBUS_LEASE_TTL"] == ["env", "3"]
    assert lines["AGENTBUS_RETENTION"] == ["env", "7d"]  # as written, not 604800.0
    assert lines["AGENTBUS_MEMORY_BUDGET"] == ["default", "640MiB"]
    assert lines["AGENTBUS_SECRET"] == ["env", "***"]
    assert lines["AGENTBUS_DISPATCH_CHUNK"] == ["default", "256"]


def test_agentbus_config_refuses_a_bad_value_naming_its_variable() -> None:
    result = CliRunner().invoke(cli, ["config"], env={"AGENTBUS_LEASE_TTL": "-1"})
    assert isinstance(result.exception, ConfigError) and "AGENTBUS_LEASE_TTL" in str(result.exception)


def test_agentbus_config_docs_prints_the_reference() -> None:
    assert _invoke("config", "--docs", env={}) == markdown()


def test_cli_options_name_their_variable_and_default_from_the_declaration() -> None:
    assert option_help("log_level", "level") == "level (env AGENTBUS_LOG_LEVEL; warning)"
    assert option_help("retention_s", "age") == "age (env AGENTBUS_RETENTION; 30d)"
    with pytest.raises(KeyError):
        option_help("no_such_setting", "x")
    shown = CliRunner().invoke(cli, ["run", "--help"], env={"COLUMNS": "240"}).output
    assert "AGENTBUS_SHARDS" in shown and "AGENTBUS_LOG_FORMAT" in shown  # not swallowed as markup
