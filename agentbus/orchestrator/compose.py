"""The orchestrator's parts put together: each receives only the pieces it uses."""

from __future__ import annotations

from dataclasses import dataclass

from agentbus.config import Settings
from agentbus.domain import App
from agentbus.orchestrator.admission import Admission
from agentbus.orchestrator.cancel import Canceller
from agentbus.orchestrator.dispatch import Sender
from agentbus.orchestrator.driver import Driver
from agentbus.orchestrator.maintenance import Maintenance
from agentbus.orchestrator.plan import Planner
from agentbus.orchestrator.ports import Approvals, Events, Jobs, Notices, Outputs, Purger, Queues, Steps, Workers
from agentbus.orchestrator.router import Router


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
    queues: Queues,
    events: Events,
    workers: Workers,
    notices: Notices,
    outputs: Outputs,
    retention: Purger,
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
        queues=queues,
        workers=workers,
        retention=retention,
        admission=admission,
        advance=driver.advance,
    )
    return Parts(driver, maintenance)
