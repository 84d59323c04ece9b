"""The API's HTTP protocol (api/_http.py): httptools with a deadline and a size limit on request
heads, on a real socket, in front of a tiny ASGI app (no store needed)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from agentbus.api._http import head_limited_protocol

HEAD_TIMEOUT_S = 0.5
MAX_HEAD = 2048


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/slow`` answers after 3 head timeouts (a long-poll); ``/echo`` answers with the body it read."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await asyncio.sleep(HEAD_TIMEOUT_S * 3)
    answer = body or scope["path"].encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(answer))]})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free: int = s.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free,
        log_level="error",
        http=head_limited_protocol(HEAD_TIMEOUT_S, MAX_HEAD),
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield free
    server.should_exit = True
    thread.join(10)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _response(s: socket.socket) -> bytes:
    """One whole response (the test app always sends content-length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")).split(b":")[1])
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


def _closed(s: socket.socket, within: float = 10.0) -> bool:
    s.settimeout(within)
    try:
        while True:
            if s.recv(65536) == b"":
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_connections_that_send_no_head_or_half_a_head_are_closed(port: int) -> None:
    silent = _connect(port)
    half = _connect(port)
    half.sendall(b"GET /echo HTTP/1.1\r\nHost: api\r\nX-Slow: ")
    assert _closed(silent) and _closed(half)


def test_a_keep_alive_connection_serves_requests_one_after_another_and_times_out_a_half_next_head(port: int) -> None:
    s = _connect(port)
    for i in range(3):
        s.sendall(f"GET /echo/{i} HTTP/1.1\r\nHost: api\r\n\r\n".encode())
        r = _response(s)
        assert r.startswith(b"HTTP/1.1 200") and r.endswith(f"/echo/{i}".encode())
    time.sleep(HEAD_TIMEOUT_S * 2)  # idle between requests: the keep-alive timeout's business, not the head's
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\n\r\nhello")
    assert _response(s).endswith(b"hello")
    s.sendall(b"GET /echo HTTP/1.1\r\nHo")  # the next head, half sent
    assert _closed(s)


def test_a_long_response_and_a_slow_body_are_not_bound_by_the_head_deadline(port: int) -> None:
    s = _connect(port)
    s.sendall(b"GET /slow HTTP/1.1\r\nHost: api\r\n\r\n")
    assert _response(s).endswith(b"/slow")
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: api\r\nContent-Length: 4\r\n\r\nab")
    time.sleep(HEAD_TIMEOUT_S * 2)
    s.sendall(b"cd")
    assert _response(s).endswith(b"abcd")


def test_a_head_beyond_the_limit_is_a_400_whether_sent_whole_or_dribbled(port: int) -> None:
    whole = _connect(port)
    whole.sendall(b"GET /echo HTTP/1.1\r\nHost: api\r\nX-Big: " + b"x" * MAX_HEAD + b"\r\n\r\n")
    assert whole.recv(65536).startswith(b"HTTP/1.1 400")
    dribbled = _connect(port)
    dribbled.sendall(b"GET /echo HTTP/1.1\r\nHost: api\r\nX-Big: ")
    for _ in range(MAX_HEAD // 512 + 1):
        dribbled.sendall(b"x" * 512)  # one header that never ends
        time.sleep(0.01)
    assert dribbled.recv(65536).startswith(b"HTTP/1.1 400")
    assert _closed(whole) and _closed(dribbled)


def test_a_large_body_is_not_a_large_head(port: int) -> None:
    s = _connect(port)
    body = b"y" * (MAX_HEAD * 8)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: api\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert _response(s).endswith(body)


def test_garbage_is_a_400(port: int) -> None:
    s = _connect(port)
    s.sendall(b"\x00\x01NOT HTTP\r\n\r\n")
    assert s.recv(65536).startswith(b"HTTP/1.1 400")
