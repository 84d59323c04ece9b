"""What every request handler shares: settings, the App, the repositories it uses and the stream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agentbus.api.submits import Submits
from agentbus.bus import ControlStream, Fleet, JobNotifier, JobWatch
from agentbus.config import Settings
from agentbus.domain import App
from agentbus.store import Approvals, Events, Jobs, Keys, Schedules, Signals, Steps


@dataclass(frozen=True)
class ApiState:
    settings: Settings
    app: App
    jobs: Jobs
    steps: Steps
    approvals: Approvals
    events: Events
    keys: Keys
    stream: ControlStream
    ping_redis: Callable[[], None]
    notifier: JobNotifier
    fleet: Fleet
    watch: JobWatch
    schedules: Schedules
    signals: Signals
    submits: Submits
