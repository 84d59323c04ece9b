"""Sending ``ctx.emit`` outputs to Redis from one thread, so that an emit never waits on the network.

An emit only appends to an in-process buffer (``OutputBuffer``: per call at most ``limit``
unsent outputs, the oldest dropped and counted beyond that). This thread wakes on the first
output and sends everything that waits in one round trip; whatever arrives meanwhile goes in
the next one, so batches grow with the rate of emits (group commit) without a fixed delay.
When Redis does not answer, the batch is dropped and counted (readers are told how many once
Redis is back) and the next try waits a little longer: outputs are best-effort, results are not.

``then(fn)`` runs ``fn`` once everything emitted before it was sent or dropped: a call's
outcome is written after its outputs, so a reader sees a call's last tokens before its end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from agentbus.domain.output import Output, OutputBuffer, OutputRecord

log = logging.getLogger("agentbus.worker")

RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0


class OutputSender:
    def __init__(self, append: Callable[[list[OutputRecord]], None], limit: int) -> None:
        self._append = append
        self._buffer = OutputBuffer(limit)
        self._after: list[Callable[[], None]] = []
        self._cond = threading.Condition()
        self._sending = False
        self._closing = False
        self._retry_at = 0.0
        self._delay = RETRY_FIRST_S
        self._thread = threading.Thread(target=self._run, name="agentbus-outputs", daemon=True)

    @property
    def dropped(self) -> int:
        """Outputs this worker could not send (buffer full, Redis away), since it started."""
        return self._buffer.dropped_total

    def start(self) -> None:
        self._thread.start()

    def put(self, out: Output) -> None:
        with self._cond:
            was_empty = not len(self._buffer)
            self._buffer.put(out)
            if was_empty:
                self._cond.notify()

    def then(self, fn: Callable[[], None]) -> None:
        """``fn()`` on this thread once what was emitted so far is sent (at once if nothing waits)."""
        with self._cond:
            if self._closing or (not self._sending and not len(self._buffer)):
                run_now = True
            else:
                run_now = False
                self._after.append(fn)
                self._cond.notify()
        if run_now:
            fn()

    def close(self, timeout: float) -> None:
        """Send what is left (one try) and stop."""
        with self._cond:
            self._closing = True
            self._retry_at = 0.0
            self._cond.notify()
        self._thread.join(timeout)

    def _ready(self) -> bool:
        if self._closing or self._after:
            return True
        return bool(len(self._buffer)) and time.monotonic() >= self._retry_at

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._ready():
                    wait = self._retry_at - time.monotonic() if len(self._buffer) else None
                    self._cond.wait(wait)
                records = self._buffer.take() if time.monotonic() >= self._retry_at else []
                after, self._after = self._after, []
                closing = self._closing
                self._sending = bool(records)
            if records:
                self._send(records)
            for fn in after:
                try:
                    fn()
                except Exception:  # never let one callback stop the sending of every call's outputs
                    log.exception("after-output callback failed")
            if closing:
                with self._cond:
                    if not self._after:  # the last send was tried: what it could not send is dropped
                        return

    def _send(self, records: list[OutputRecord]) -> None:
        try:
            self._append(records)
            failed = False
        except Exception as exc:  # Unavailable, or any refusal: outputs are best-effort, never fatal
            failed = True
            if self._delay == RETRY_FIRST_S:
                log.warning("outputs could not be sent (%s): dropping and counting them until Redis is back", exc)
        with self._cond:
            self._sending = False
            if failed:
                self._buffer.lost(records, "redis unavailable")
                self._retry_at = time.monotonic() + self._delay
                self._delay = min(RETRY_MAX_S, self._delay * 2)
            elif self._delay != RETRY_FIRST_S:
                log.warning("outputs are sent again")
                self._delay = RETRY_FIRST_S
                self._retry_at = 0.0
