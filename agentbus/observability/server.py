"""``/metrics``, ``/healthz`` and ``/readyz`` on a port of their own, served from a daemon thread.

The orchestrator and the workers have no HTTP server otherwise; the API serves its metrics here
too, so that they are never behind its authentication or its connection limits. The stdlib's
threading HTTP server is enough: a scrape or a probe every few seconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from agentbus.domain.errors import ConfigError

log = logging.getLogger("agentbus.observability")


@dataclass(frozen=True)
class Readiness:
    """What ``/readyz`` answers: ready or not, and a body saying why."""

    ready: bool
    body: dict[str, Any] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._json(200, {"status": "ok"})
        elif path == "/readyz" and self.server.readiness is not None:
            try:
                r = self.server.readiness()
            except Exception as exc:  # a probe that raises is a probe that failed
                r = Readiness(False, {"error": f"{type(exc).__name__}: {exc}"})
            self._json(200 if r.ready else 503, {"status": "ok" if r.ready else "unavailable", **r.body})
        else:
            self._json(404, {"error": {"type": "NotFound", "message": f"no route {path}"}})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds are not news
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    readiness: Callable[[], Readiness] | None = None


class MetricsServer:
    """Serves on ``host:port`` until ``close()``; port 0 means none (``start`` does nothing)."""

    def __init__(self, port: int, host: str = "0.0.0.0", readiness: Callable[[], Readiness] | None = None) -> None:
        self.port = port
        self.host = host
        self.readiness = readiness
        self._server: _Server | None = None

    def start(self) -> MetricsServer:
        if self.port <= 0:
            return self
        try:
            self._server = _Server((self.host, self.port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {self.host}:{self.port} ({exc.strerror}): roles sharing a host need a "
                "--metrics-port each (AGENTBUS_METRICS_PORT; 0: none)"
            ) from None
        self._server.readiness = self.readiness
        threading.Thread(target=self._server.serve_forever, name="agentbus-metrics", daemon=True).start()
        log.info("metrics, health and readiness on http://%s:%d", self.host, self.port)
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def probe(checks: dict[str, Callable[[], object]], timeout_s: float = 3.0) -> dict[str, str]:
    """Run each check on a thread of its own: {name: "ok" or why not}; one stuck past ``timeout_s`` fails."""
    results: dict[str, str] = {}

    def run(name: str, check: Callable[[], object]) -> None:
        try:
            check()
            results[name] = "ok"
        except Exception as exc:
            results[name] = str(exc) or type(exc).__name__

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in checks.items()]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return {name: results.get(name, f"no answer within {timeout_s:g}s") for name in checks}
