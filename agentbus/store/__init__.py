"""PostgreSQL (SQLite in dev) through peewee: the record of every job and step."""

from __future__ import annotations

import peewee

from agentbus.store.approvals import ApprovalQueries, approval_payload
from agentbus.store.db import is_postgres, migrate, open_database
from agentbus.store.jobs import JobQueries
from agentbus.store.keys import KeyQueries, KeyRecord
from agentbus.store.memory import LoadChunk, MemoryQueries, MemoryRow, NamespaceRecord, NewItem
from agentbus.store.models import MODELS
from agentbus.store.records import (
    ApprovalRecord,
    JobRecord,
    NewJob,
    NewStep,
    StepRow,
    TaskOutcome,
    WebhookRow,
    step_id,
)
from agentbus.store.retention import PurgeCounts, Retention
from agentbus.store.steps import Replayed, StepQueries


class Store(JobQueries, StepQueries, ApprovalQueries, KeyQueries, MemoryQueries):
    """Every query agentbus makes, over one peewee database."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db
        db.bind(MODELS)

    @classmethod
    def from_url(cls, url: str, max_connections: int = 32) -> Store:
        return cls(open_database(url, max_connections))

    @property
    def backend(self) -> str:
        return "postgresql" if is_postgres(self.db) else "sqlite"

    def migrate(self) -> list[str]:
        return migrate(self.db)

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()
        close_all = getattr(self.db, "close_all", None)
        if close_all is not None:
            close_all()


__all__ = [
    "ApprovalRecord",
    "JobRecord",
    "KeyRecord",
    "LoadChunk",
    "MemoryRow",
    "NamespaceRecord",
    "NewItem",
    "NewJob",
    "NewStep",
    "PurgeCounts",
    "Replayed",
    "Retention",
    "StepRow",
    "Store",
    "TaskOutcome",
    "WebhookRow",
    "approval_payload",
    "step_id",
]
