"""uvicorn's httptools protocol with a deadline and a size limit on the request head.

httptools (llhttp, in C) parses a request in a fraction of h11's Python time per request, but
uvicorn (0.54) bounds neither how long a head may take nor how large it may grow with it:

- **Deadline.** uvicorn times out idle keep-alive connections, but none that has not finished
  its first request head: a client that connects and sends nothing, or half a head, holds a file
  descriptor for ever (tens of thousands of them exhausted the process's descriptors). A timer
  starts when a head is due (on connect, and when the next head of a keep-alive connection
  starts arriving) and closes the connection if the head is not complete when it fires. Bodies
  and responses are not bound by it: long-polls and event streams are legitimate long requests.
- **Size.** ``h11_max_incomplete_event_size`` is h11's alone; llhttp buffers a header of any
  length. The bytes received while a head is incomplete are counted, and so is the complete
  head (URL and headers), and either beyond the limit is answered 400, as h11 answered it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_INVALID = "Invalid HTTP request received."


class HeadTooLarge(Exception):
    """Raised from a parser callback: httptools turns it into an ``HttpParserError``, a 400."""


class HeadLimitedProtocol(HttpToolsProtocol):
    head_timeout_s: float = 10.0
    max_head_bytes: int = 16_384

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        # True from the connection's start, and from the end of each request, until the next
        # head is complete: the bytes arriving then belong to a head
        self._in_head = True
        self._head_bytes = 0  # raw bytes received while in a head (bounds an unfinished one)
        self._head_size = 0  # the parsed head's URL and headers (bounds a complete one)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self.logger.warning("Request head larger than %d bytes.", self.max_head_bytes)
            self.send_400_response(_INVALID)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    # parser callbacks: count the head as it is parsed
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # whatever follows on this connection is the next head

    def _count(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.max_head_bytes:
            raise HeadTooLarge(self._head_size)

    # the deadline
    def _reading_head(self) -> bool:
        """A head is due and no response is in progress (a long-poll is not a slow head)."""
        return self._in_head and (self.cycle is None or self.cycle.response_complete)

    def _watch_head(self) -> None:
        """A timer while a head is being read; none once it is complete (or the connection closes)."""
        if self._reading_head() and not self.transport.is_closing():
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
        if self._reading_head() and not self.transport.is_closing():
            self.transport.close()


def head_limited_protocol(timeout_s: float, max_head_bytes: int) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.run(http=...)``, with this deadline and limit on request heads."""
    return type(
        "HeadLimitedProtocol", (HeadLimitedProtocol,), {"head_timeout_s": timeout_s, "max_head_bytes": max_head_bytes}
    )
