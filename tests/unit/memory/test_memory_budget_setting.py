"""AGENTBUS_MEMORY_BUDGET: sizes with units, a default that fits a 1 GB replica, clear errors."""

from __future__ import annotations

import pytest

from agentbus.config import Settings
from agentbus.domain import ConfigError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("805306368", 805306368), ("768MiB", 768 << 20), ("768M", 768 << 20), ("1GB", 10**9), ("0.5GiB", 512 << 20)],
)
def test_memory_budget_reads_sizes(raw: str, expected: int) -> None:
    assert Settings.from_env({"AGENTBUS_MEMORY_BUDGET": raw}).memory_budget == expected


def test_memory_budget_default_leaves_room_in_a_1gb_replica() -> None:
    assert 256 << 20 <= Settings.from_env({}).memory_budget <= 768 << 20


@pytest.mark.parametrize("raw", ["lots", "-1G", "12XB", "nan"])
def test_memory_budget_refuses_what_is_not_a_size(raw: str) -> None:
    with pytest.raises(ConfigError, match="AGENTBUS_MEMORY_BUDGET"):
        Settings.from_env({"AGENTBUS_MEMORY_BUDGET": raw})
