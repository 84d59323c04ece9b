"""Redis: the control stream, RQ queues and workers, the orchestrator lease, worker heartbeats."""

from agentbus.bus.connection import connect, ping
from agentbus.bus.fleet import Fleet
from agentbus.bus.lease import Lease, lease_holder
from agentbus.bus.notify import JobNotifier
from agentbus.bus.output import OutputReader, OutputStream
from agentbus.bus.queues import Dispatcher, queue_depths, queue_name
from agentbus.bus.rqworker import AgentbusWorker, run_worker
from agentbus.bus.stream import ControlStream, Entry
from agentbus.bus.watch import JobWatch

__all__ = [
    "AgentbusWorker",
    "ControlStream",
    "Dispatcher",
    "Entry",
    "Fleet",
    "JobNotifier",
    "JobWatch",
    "Lease",
    "OutputReader",
    "OutputStream",
    "connect",
    "lease_holder",
    "ping",
    "queue_depths",
    "queue_name",
    "run_worker",
]
