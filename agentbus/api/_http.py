"""uvicorn's h11 protocol with a deadline on the request head.

uvicorn (0.54) times out idle keep-alive connections, but none that has not finished its
first request head: a client that connects and sends nothing, or half a head, holds a file
descriptor for ever (tens of thousands of them exhausted the process's descriptors). This
subclass starts a timer when a head is due (on connect, and when the next head of a
keep-alive connection starts) and closes the connection if the head is not complete when
it fires. Bodies and responses are not bound by it: long-polls and event streams are
legitimate long requests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeadTimeoutH11Protocol(H11Protocol):
    head_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _watch_head(self) -> None:
        """A timer while a head is being read; none once it is complete (or the connection closes)."""
        reading_head = self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE
        if reading_head and not self.transport.is_closing():
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)
        else:
            self._cancel_head_timer()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def head_timeout_protocol(timeout_s: float) -> type[H11Protocol]:
    """The protocol class for ``uvicorn.run(http=...)``, with this deadline on request heads."""
    return type("HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout_s": timeout_s})
