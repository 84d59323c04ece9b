"""Later and recurring jobs: the due-job sweep and the schedules' ticks.

Both run in shard 0's holder (deployment-wide work, as the timers), about twice a second, and
both are safe to run twice at once — the moment of a failover — because every write is a
compare-and-set in PostgreSQL:

* a job submitted for later (``run_at``/``delay``) waits as ``scheduled``; ``Jobs.submit_due``
  moves the due ones to ``submitted`` (one sweep wins each), and each is then advanced;
* a due schedule's ticks are decided by ``domain/schedules.plan`` (its catch-up policy) and
  fired by ``Schedules.fire``: ``next_tick`` moves by compare-and-set and each tick's job is
  unique on (schedule, tick), so a tick makes exactly one job however many orchestrators fire it.

Nothing lives in Redis: a FLUSHALL or a restart loses no due time and fires no tick twice.
At its start every orchestrator keeps the app's schedules (``@app.agent(schedule=...)``) in the
table, under the tenant ``APP_TENANT``: created, or updated in place by name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from agentbus.domain import App, ValidationFailed
from agentbus.domain.cron import next_tick, parse, zone
from agentbus.domain.schedules import APP_TENANT, ON_TIME_S, catch_up_policy, plan
from agentbus.observability import metrics
from agentbus.orchestrator.ports import DueJobs, ScheduleStore
from agentbus.store import NewSchedule

log = logging.getLogger("agentbus.orchestrator")

SWEEP_S = 0.5
"""How often shard 0's holder looks for due jobs and schedules (a job for later starts within it)."""


class Scheduler:
    def __init__(
        self,
        app: App,
        *,
        jobs: DueJobs,
        schedules: ScheduleStore,
        advance: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.jobs = jobs
        self.schedules = schedules
        self.advance = advance
        """Starts a submitted job (``Maintenance.advance``: here, or handed to its shard's holder)."""
        self.clock = clock

    def keep_app_schedules(self) -> int:
        """Create or update the app's declared schedules (by name, under ``APP_TENANT``); returns
        how many changed. A schedule an agent no longer declares is left alone: delete it by name."""
        now = self.clock()
        changed = 0
        for name, (agent, spec) in sorted(self.app.schedules().items()):
            cron, tz = spec.check()
            new = NewSchedule(
                tenant=APP_TENANT,
                name=name,
                agent=agent,
                input=spec.input,
                cron=spec.cron,
                timezone=spec.timezone,
                catch_up=spec.catch_up,
                next_tick=next_tick(cron, tz, now),
                origin="app",
            )
            _, did = self.schedules.keep(new)
            changed += did
        if changed:
            log.info("kept %d of the app's schedules", changed)
        return changed

    def sweep(self) -> None:
        """Start the jobs whose time has come, then fire the schedules that are due."""
        now = self.clock()
        due = self.jobs.submit_due(now)
        metrics.scheduled("job_due", len(due))
        for job_id, run_at in due:
            if now - run_at > ON_TIME_S:
                metrics.scheduled("job_late")
                log.warning("job %s starts %.0fs late (due at %s)", job_id, now - run_at, run_at)
            self.advance(job_id)
        for s in self.schedules.due(now):
            try:
                cron, tz, policy = parse(s.cron), zone(s.timezone), catch_up_policy(s.catch_up)
            except ValidationFailed as exc:  # stored before a rule changed: say so, fire nothing
                log.error("schedule %s (%s) cannot fire: %s", s.id, s.name, exc.message)
                continue
            firing = plan(cron, tz, s.next_tick, now, policy)
            made = self.schedules.fire(s, firing.fire, firing.next_tick, now)
            if made is None:  # another orchestrator fired it first (a failover's overlap)
                continue
            metrics.scheduled("tick_fired", len(made))
            if firing.skipped:
                metrics.scheduled("tick_skipped", firing.skipped)
                log.warning("schedule %s (%s) skipped %d missed ticks (%s)", s.id, s.name, firing.skipped, policy)
            for job_id in made:
                self.advance(job_id)
