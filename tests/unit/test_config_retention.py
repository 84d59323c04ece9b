"""AGENTBUS_RETENTION and friends: read as people write ages; bad values refused at start-up."""

from __future__ import annotations

import pytest

from agentbus.config import Settings
from agentbus.domain import ConfigError


def test_retention_defaults_to_thirty_days_in_batches_of_a_thousand() -> None:
    s = Settings.from_env({})
    assert s.retention_s == 30 * 86_400 and s.retention_batch == 1000


@pytest.mark.parametrize(("raw", "seconds"), [("30d", 30 * 86_400.0), ("12h", 43_200.0), ("0", 0.0), ("off", 0.0)])
def test_retention_reads_ages_and_off(raw: str, seconds: float) -> None:
    assert Settings.from_env({"AGENTBUS_RETENTION": raw}).retention_s == seconds


@pytest.mark.parametrize(
    "env",
    [{"AGENTBUS_RETENTION": "30 days"}, {"AGENTBUS_RETENTION_BATCH": "0"}, {"AGENTBUS_RETENTION_INTERVAL": "0"}],
)
def test_bad_retention_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="AGENTBUS_RETENTION"):
        Settings.from_env(env)
