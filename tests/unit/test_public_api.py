"""The public API: what users and the other packages may import."""

from __future__ import annotations

import importlib

import pytest

import agentbus

SUBPACKAGES = [
    "agentbus.api",
    "agentbus.bus",
    "agentbus.domain",
    "agentbus.orchestrator",
    "agentbus.security",
    "agentbus.store",
    "agentbus.worker",
]


def test_root_all_is_pinned() -> None:
    assert sorted(agentbus.__all__) == [
        "AgentContext",
        "AgentbusError",
        "App",
        "Client",
        "Context",
        "Handle",
        "NonDeterministicAgent",
        "Schedule",
        "SignalTimeout",
        "TaskCancelled",
        "TaskContext",
        "TaskFailed",
        "TaskTimeout",
        "__version__",
    ]


def test_root_names_resolve() -> None:
    for name in agentbus.__all__:
        assert getattr(agentbus, name) is not None
    assert isinstance(agentbus.__version__, str) and agentbus.__version__


def test_root_reexports_the_domain_classes() -> None:
    from agentbus import domain

    assert agentbus.App is domain.App
    assert agentbus.TaskFailed is domain.TaskFailed
    assert issubclass(agentbus.NonDeterministicAgent, agentbus.AgentbusError)


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_subpackage_declares_all(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list) and exported, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names {attr!r}, which it does not define"


def test_config_declares_all() -> None:
    from agentbus import config

    assert set(config.__all__) == {"DEV_SECRET", "Settings", "keyrings"}
