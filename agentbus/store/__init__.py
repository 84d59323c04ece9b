"""PostgreSQL (SQLite in dev) through peewee: the record of every job and step.

One small repository per aggregate, each owning its tables and SQL, all over one database:
``Jobs``, ``Steps`` (the journal), ``Approvals``, ``Events`` (the job event log), ``Webhooks``
(the approval webhook outbox), ``Signals``, ``Keys``, ``Memory`` and ``Schedules``; ``Retention``
purges, ``DueWork`` says which timers have anything due, ``ConsoleQueries`` reads for the
console. ``Repositories`` builds them all from a URL for an entry point.
"""

from __future__ import annotations

from agentbus.store.approvals import Approvals, approval_payload
from agentbus.store.due import Due, DueWork
from agentbus.store.events import Events
from agentbus.store.jobs import Jobs
from agentbus.store.keys import KeyRecord, Keys
from agentbus.store.memory import LoadChunk, Memory, MemoryRow, NamespaceRecord, NewItem
from agentbus.store.records import (
    ApprovalRecord,
    JobRecord,
    NewJob,
    NewStep,
    SignalRecord,
    StepRow,
    TaskOutcome,
    WebhookRow,
    step_id,
)
from agentbus.store.repositories import Repositories
from agentbus.store.retention import PurgeCounts, Retention
from agentbus.store.schedules import NewSchedule, ScheduleRecord, Schedules
from agentbus.store.signals import Signals, signal_payload
from agentbus.store.steps import Replayed, Steps
from agentbus.store.webhooks import Webhooks

__all__ = [
    "ApprovalRecord",
    "Approvals",
    "Due",
    "DueWork",
    "Events",
    "JobRecord",
    "Jobs",
    "KeyRecord",
    "Keys",
    "LoadChunk",
    "Memory",
    "MemoryRow",
    "NamespaceRecord",
    "NewItem",
    "NewJob",
    "NewSchedule",
    "NewStep",
    "PurgeCounts",
    "Replayed",
    "Repositories",
    "Retention",
    "ScheduleRecord",
    "Schedules",
    "SignalRecord",
    "Signals",
    "StepRow",
    "Steps",
    "TaskOutcome",
    "WebhookRow",
    "Webhooks",
    "approval_payload",
    "signal_payload",
    "step_id",
]
