"""Redis: the control stream, RQ queues and workers, the orchestrators' shard leases, worker heartbeats."""

from agentbus.bus.connection import connect, ping
from agentbus.bus.fleet import Fleet
from agentbus.bus.lease import Lease, Roster, free_leases, lease_holder, lease_name, renew_all
from agentbus.bus.notify import JobNotifier
from agentbus.bus.output import OutputReader, OutputStream
from agentbus.bus.queues import Dispatcher, queue_depths, queue_name
from agentbus.bus.rqworker import AgentbusWorker, run_worker
from agentbus.bus.stream import ControlStream, Entry
from agentbus.bus.watch import EndWaiter, JobWatch

__all__ = [
    "AgentbusWorker",
    "ControlStream",
    "Dispatcher",
    "EndWaiter",
    "Entry",
    "Fleet",
    "JobNotifier",
    "JobWatch",
    "Lease",
    "OutputReader",
    "OutputStream",
    "Roster",
    "connect",
    "free_leases",
    "lease_holder",
    "lease_name",
    "ping",
    "queue_depths",
    "queue_name",
    "renew_all",
    "run_worker",
]
