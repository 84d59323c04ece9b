"""The orchestrator role: replays agents, dispatches tasks, keeps the record whole."""

from agentbus.orchestrator.driver import Driver
from agentbus.orchestrator.router import Route, route
from agentbus.orchestrator.service import Orchestrator, run_orchestrator

__all__ = ["Driver", "Orchestrator", "Route", "route", "run_orchestrator"]
