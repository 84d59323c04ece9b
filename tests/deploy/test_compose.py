"""compose.yaml and the images: every role health-checked, two orchestrators, no default secret,
production by default, the GPU worker from its own CUDA image."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentbus.config import DEV_SECRET, Settings
from agentbus.domain import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())  # merges `<<:` keys too
    return doc


def roles(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run an agentbus role, by role."""
    out = {}
    for svc in compose["services"].values():
        cmd = svc.get("command") or []
        if "--role" in cmd:
            out[cmd[cmd.index("--role") + 1]] = svc
    return out


def test_compose_runs_every_role(compose: dict[str, Any]) -> None:
    assert set(roles(compose)) == {"api", "orchestrator", "worker-cpu", "worker-gpu"}
    assert compose["services"]["migrate"]["command"] == ["migrate"]


def test_every_role_has_a_health_check_on_its_readyz(compose: dict[str, Any]) -> None:
    for role, svc in roles(compose).items():
        check = svc["healthcheck"]
        assert not check.get("disable"), role
        probe = " ".join(check["test"])
        port = 8000 if role == "api" else 9090
        assert f"http://127.0.0.1:{port}/readyz" in probe, role
        assert svc["environment"]["AGENTBUS_METRICS_PORT"] == "9090", role


def test_two_orchestrators(compose: dict[str, Any]) -> None:
    orchestrators = [s for r, s in roles(compose).items() if r == "orchestrator"]
    assert sum(s.get("deploy", {}).get("replicas", 1) for s in orchestrators) >= 2


def test_no_default_secret_compose_refuses_to_start_without_one(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        secret = (svc.get("environment") or {}).get("AGENTBUS_SECRET")
        if secret is None:
            continue
        # ${VAR:?message}: compose stops with the message when the variable is unset or empty
        assert re.fullmatch(r"\$\{AGENTBUS_SECRET:\?[^}]+\}", secret), (name, secret)
    text = (ROOT / "compose.yaml").read_text()
    assert DEV_SECRET not in text and ":-dev" not in text


def test_the_images_are_production_by_default_and_non_root() -> None:
    for dockerfile in ("Dockerfile", "Dockerfile.gpu"):
        text = (ROOT / dockerfile).read_text()
        runtime = text.split("AS runtime", 1)[1]
        assert re.search(r"^\s+AGENTBUS_ENV=production", runtime, re.M), dockerfile
        assert re.search(r"^USER 10001:10001$", runtime, re.M), dockerfile
        assert 'ENTRYPOINT ["agentbus"]' in runtime, dockerfile


def test_the_gpu_worker_is_built_from_a_cuda_base_with_the_gpu_extra(compose: dict[str, Any]) -> None:
    gpu = roles(compose)["worker-gpu"]
    assert gpu["build"]["dockerfile"] == "Dockerfile.gpu"
    assert gpu["image"] != compose["services"]["api"]["image"]
    assert gpu["profiles"] == ["gpu"]  # built and started only where asked for: a GPU host
    text = (ROOT / "Dockerfile.gpu").read_text()
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:12\.", text, re.M)
    assert 'pip install ".[gpu]"' in text
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("numba-cuda") for dep in extras["gpu"])


def test_production_refuses_a_missing_empty_or_development_secret() -> None:
    for env in ({}, {"AGENTBUS_SECRET": ""}, {"AGENTBUS_SECRET": DEV_SECRET}):
        with pytest.raises(ConfigError, match="AGENTBUS_SECRET"):
            Settings.from_env({"AGENTBUS_ENV": "production", **env})
    assert Settings.from_env({"AGENTBUS_ENV": "production", "AGENTBUS_SECRET": "s" * 64}).secret == "s" * 64
    # development (agentbus dev, the tests) keeps its default
    assert Settings.from_env({}).secret == DEV_SECRET
