"""The orchestrator's parts put together: each receives only the pieces it uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentbus.bus import ControlStream, Dispatcher, Fleet, JobNotifier, OutputStream
from agentbus.config import Settings, keyrings
from agentbus.domain import App
from agentbus.orchestrator.admission import Admission
from agentbus.orchestrator.cancel import Canceller
from agentbus.orchestrator.dispatch import Sender
from agentbus.orchestrator.driver import Driver
from agentbus.orchestrator.maintenance import Maintenance
from agentbus.orchestrator.plan import Planner
from agentbus.orchestrator.ports import (
    Approvals,
    Events,
    Jobs,
    Notices,
    Outputs,
    Purger,
    Queues,
    Signals,
    Steps,
    Timers,
    Workers,
)
from agentbus.orchestrator.router import Router
from agentbus.security import Keyring
from agentbus.store import DueWork, Repositories, Retention


@dataclass(frozen=True)
class Parts:
    driver: Driver
    maintenance: Maintenance


def compose(
    app: App,
    settings: Settings,
    *,
    jobs: Jobs,
    steps: Steps,
    approvals: Approvals,
    signals: Signals,
    queues: Queues,
    events: Events,
    workers: Workers,
    notices: Notices,
    outputs: Outputs,
    retention: Purger,
    due: Timers,
) -> Parts:
    router = Router(workers)
    sender = Sender(steps, queues, router, settings)
    admission = Admission(app, steps, router, sender)
    driver = Driver(
        app,
        jobs=jobs,
        steps=steps,
        events=events,
        notices=notices,
        outputs=outputs,
        planner=Planner(app, settings, router),
        sender=sender,
        admission=admission,
        canceller=Canceller(jobs, steps, approvals, queues),
    )
    maintenance = Maintenance(
        settings,
        jobs=jobs,
        steps=steps,
        approvals=approvals,
        signals=signals,
        queues=queues,
        workers=workers,
        retention=retention,
        due=due,
        admission=admission,
        advance=driver.advance,
    )
    return Parts(driver, maintenance)


def compose_over(
    app: App,
    settings: Settings,
    repos: Repositories,
    conn: Any,
    *,
    events: ControlStream | None = None,
    workers: Fleet | None = None,
    ring: Keyring | None = None,
) -> Parts:
    """The parts over one database's repositories and one Redis connection: what the orchestrator
    role runs, and what tests drive by hand. ``ring`` signs both the stream and the dispatches (tests);
    by default the settings' keyrings do."""
    stream_ring, dispatch_ring = keyrings(settings) if ring is None else (ring, ring)
    return compose(
        app,
        settings,
        jobs=repos.jobs,
        steps=repos.steps,
        approvals=repos.approvals,
        signals=repos.signals,
        queues=Dispatcher(conn, dispatch_ring),
        events=events or ControlStream(conn, stream_ring, shards=settings.shards),
        workers=workers or Fleet(conn, settings.worker_ttl_s),
        notices=JobNotifier(conn),
        outputs=OutputStream(conn, settings.output_buffer, settings.output_ttl_s),
        retention=Retention(repos.db),
        due=DueWork(repos.db),
    )
