"""The composition root's tool: every repository, built once over one database.

Entry points (the API, the orchestrator, a worker, the CLI) open a ``Repositories`` from the
database URL and hand each role the few repositories it uses; no role receives the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import peewee

from agentbus.store.approvals import Approvals
from agentbus.store.db import ConnectionPerCall, is_postgres, migrate, open_database
from agentbus.store.events import Events
from agentbus.store.jobs import Jobs
from agentbus.store.keys import Keys
from agentbus.store.memory import Memory
from agentbus.store.models import MODELS
from agentbus.store.schedules import Schedules
from agentbus.store.signals import Signals
from agentbus.store.steps import Steps
from agentbus.store.webhooks import Webhooks


@dataclass(frozen=True)
class Repositories:
    db: peewee.Database
    events: Events
    webhooks: Webhooks
    jobs: Jobs
    approvals: Approvals
    steps: Steps
    keys: Keys
    memory: Memory
    schedules: Schedules
    signals: Signals

    @classmethod
    def over(cls, db: peewee.Database) -> Repositories:
        db.bind(MODELS)
        events, webhooks = Events(db), Webhooks(db)
        jobs = Jobs(db, events)
        approvals = Approvals(db, events, webhooks, jobs)
        signals = Signals(db, events)
        steps = Steps(db, events, approvals, signals)
        return cls(db, events, webhooks, jobs, approvals, steps, Keys(db), Memory(db), Schedules(db, events), signals)

    @classmethod
    def from_url(cls, url: str, max_connections: int = 32, pool_timeout: float = 10.0) -> Repositories:
        return cls.over(open_database(url, max_connections, pool_timeout))

    def per_call(self, wrap: Any = None) -> Repositories:
        """The same repositories, each call on a pooled connection of its own (``ConnectionPerCall``),
        then passed to ``wrap`` (the API's circuit breaker). Typed as the repositories: the proxies
        answer every method of what they wrap."""
        proxies: dict[str, Any] = {}
        for f in fields(self):
            if f.name != "db":
                proxy = ConnectionPerCall(getattr(self, f.name))
                proxies[f.name] = proxy if wrap is None else wrap(proxy)
        return replace(self, **proxies)

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
