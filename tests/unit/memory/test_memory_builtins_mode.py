"""``ctx.memory.search(..., mode=)`` in agents: the step carries the mode, and only when it is not the default."""

from __future__ import annotations

from typing import Any

from agentbus.domain.app import App
from agentbus.domain.builtins import AgentMemory


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def run(self, name: str, *args: Any) -> list[dict[str, Any]]:
        self.calls.append((name, *args))
        return []


def test_the_step_carries_hybrid_and_leaves_the_default_out() -> None:
    ctx = Recorder()
    AgentMemory(ctx).search("notes", q="INV-2024-0042")
    AgentMemory(ctx).search("notes", q="INV-2024-0042", k=3, mode="hybrid")
    assert ctx.calls == [
        ("memory.search", "notes", "INV-2024-0042", None, 10, None),  # as journals written before modes
        ("memory.search", "notes", "INV-2024-0042", None, 3, None, "hybrid"),
    ]


def test_the_builtin_task_hands_the_mode_to_the_memory_service() -> None:
    seen: dict[str, Any] = {}

    class Memory:
        def search(self, namespace: str, **kwargs: Any) -> list[dict[str, Any]]:
            seen.update(kwargs, namespace=namespace)
            return []

    class Ctx:
        memory = Memory()

    task = App("t").tasks["memory.search"]
    task.fn(Ctx(), "notes", "refund", None, 5, None, "hybrid")
    assert seen == {"namespace": "notes", "q": "refund", "vector": None, "k": 5, "filter": None, "mode": "hybrid"}
