"""The worker roles: execute registered tasks, write results, report to the orchestrator."""

from agentbus.worker import gpu
from agentbus.worker.execute import Executor
from agentbus.worker.service import run_worker_role

__all__ = ["Executor", "gpu", "run_worker_role"]
