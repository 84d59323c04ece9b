"""The threads sync calls run on: daemon threads, as many as the calls that need one.

Not ``concurrent.futures.ThreadPoolExecutor``: its threads are joined at interpreter exit, so
one abandoned call (timed out, cancelled) would hold the worker's exit hostage, and a thread
stuck in an abandoned call would take a slot from the calls that follow. Here a stuck thread
is just left behind (the executor counts it) and the next call gets a fresh thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class Threads:
    def __init__(self, name: str = "agentbus-call") -> None:
        self._name = name
        self._items: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self.started = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        self._items.put((fut, fn, args))
        with self._lock:
            # Each item claims an idle thread or starts one, so no item waits behind a stuck call.
            if self._idle > 0:
                self._idle -= 1
                return fut
            self.started += 1
            n = self.started
        threading.Thread(target=self._serve, name=f"{self._name}-{n}", daemon=True).start()
        return fut

    def _serve(self) -> None:
        while True:
            fut, fn, args = self._items.get()
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn(*args))
                except BaseException as exc:  # the task's own error, handed to whoever awaits it
                    fut.set_exception(exc)
            del fut, fn, args
            with self._lock:
                self._idle += 1
