"""Writing call outcomes to PostgreSQL in batches, retried until they are written (issue 17.4).

A call's result lives only in this process until its row says so: a failed write (a
PostgreSQL restart, a killed connection) is retried with backoff, never dropped, and the
call stays in the worker's heartbeat meanwhile, so the reaper does not run it again. A write
that did land but whose answer was lost matches nothing on retry (the row is no longer
``running``): compare-and-set makes the retry harmless.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from agentbus.domain import ControlEvent, Unavailable
from agentbus.store import Steps, TaskOutcome

log = logging.getLogger("agentbus.worker")

FLUSH_EVERY_N = 256
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 5.0


class OutcomeWriter:
    def __init__(
        self,
        steps: Steps,
        publish: Callable[[list[ControlEvent]], None],
        worker_id: str,
        on_written: Callable[[list[TaskOutcome]], None],
    ) -> None:
        self.steps = steps
        self.publish = publish
        self.worker_id = worker_id
        self.on_written = on_written
        self._items: queue.SimpleQueue[TaskOutcome | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="agentbus-outcomes", daemon=True)
        self._closing = False
        self._give_up_at: float | None = None
        self.failing = False

    def start(self) -> None:
        self._thread.start()

    def put(self, outcome: TaskOutcome) -> None:
        self._items.put(outcome)

    def close(self, timeout: float) -> bool:
        """Write what is left (retrying for at most ``timeout`` seconds); True when all was written."""
        self._give_up_at = time.monotonic() + timeout
        self._items.put(None)
        self._thread.join(timeout + 1.0)
        return not self._thread.is_alive() and not self.failing

    def _run(self) -> None:
        # No fixed delay: write what is there now. Outcomes that arrive while a write is in flight
        # wait for it and go together in the next one, so batches grow with the load by themselves.
        while True:
            first = self._items.get()
            batch = [] if first is None else [first]
            stop = first is None
            while not stop and len(batch) < FLUSH_EVERY_N:
                try:
                    item = self._items.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            if batch and not self._write(batch):
                return  # closing and PostgreSQL stayed away past the deadline: the reaper takes over
            if stop:
                return

    def _write(self, batch: list[TaskOutcome]) -> bool:
        delay = RETRY_FIRST_S
        while True:
            try:
                jobs = self.steps.record_outcomes(batch, self.worker_id)
                break
            except Unavailable as exc:
                if not self.failing:
                    log.warning("writing %d outcomes failed (%s): keeping them and retrying", len(batch), exc)
                self.failing = True
                if self._give_up_at is not None and time.monotonic() + delay > self._give_up_at:
                    log.error("gave up writing %d outcomes at shutdown: the reaper will run them again", len(batch))
                    return False
                time.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
        if self.failing:
            log.warning("outcome writes recovered")
            self.failing = False
        if jobs:
            try:
                self.publish([ControlEvent("job.advance", tuple(jobs))])
            except Unavailable as exc:  # the reconciler advances jobs whose message was lost
                log.warning("could not announce %d advanced jobs: %s", len(jobs), exc)
        self.on_written(batch)
        return True
