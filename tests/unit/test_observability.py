"""Logs, metrics and the health port, without any other process."""

from __future__ import annotations

import io
import json
import logging
import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentbus.config import Settings
from agentbus.domain import ConfigError
from agentbus.observability import MetricsServer, Readiness, configure_logging, log_context, metrics, valid_request_id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_json_lines_carry_the_role_and_the_ids_bound_where_they_were_written(restore_logging: object) -> None:
    out = io.StringIO()
    configure_logging("worker-cpu", "info", "json", stream=out)
    log = logging.getLogger("agentbus.test")
    with log_context(job_id="j1", task_id="j1-3", attempt=2):
        log.info("call %s finished", "square")
    log.warning("outside any call")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "call square finished"
    assert (first["role"], first["job_id"], first["task_id"], first["attempt"]) == ("worker-cpu", "j1", "j1-3", 2)
    assert first["level"] == "INFO" and first["logger"] == "agentbus.test"
    assert second["role"] == "worker-cpu" and "job_id" not in second


def test_text_lines_append_the_ids(restore_logging: object) -> None:
    out = io.StringIO()
    configure_logging("api", "warning", "text", stream=out)
    with log_context(request_id="r-1", tenant="acme"):
        logging.getLogger("agentbus.test").warning("slow")
        logging.getLogger("agentbus.test").info("not shown at warning")
    line = out.getvalue().strip()
    assert " api agentbus.test WARNING slow" in line and line.endswith("tenant=acme request_id=r-1")


def test_request_ids_are_kept_only_when_short_and_safe() -> None:
    assert valid_request_id("0f1e-abc_2.3:x/y") == "0f1e-abc_2.3:x/y"
    for bad in ("", "a b", "x" * 129, "line\nbreak", '"quoted"', None):
        assert valid_request_id(bad) is None


def test_log_and_metrics_settings_are_checked() -> None:
    s = Settings.from_env({"AGENTBUS_LOG_LEVEL": "INFO", "AGENTBUS_LOG_FORMAT": "json", "AGENTBUS_METRICS_PORT": "0"})
    assert (s.log_level, s.log_format, s.metrics_port) == ("info", "json", 0)
    assert Settings.from_env({}).metrics_port == 9090
    for env in ({"AGENTBUS_LOG_LEVEL": "loud"}, {"AGENTBUS_LOG_FORMAT": "xml"}, {"AGENTBUS_METRICS_PORT": "70000"}):
        with pytest.raises(ConfigError):
            Settings.from_env(env)


def test_queue_labels_split_target_and_priority() -> None:
    assert metrics.queue_labels("agentbus.cpu") == ("cpu", "normal")
    assert metrics.queue_labels("agentbus.gpu.8gb.high") == ("gpu.8gb", "high")
    assert metrics.queue_labels("agentbus.reports.low") == ("reports", "low")


def test_the_health_port_serves_metrics_and_readiness() -> None:
    state = {"ready": True}
    port = _free_port()
    server = MetricsServer(port, "127.0.0.1", lambda: Readiness(state["ready"], {"lease": "standby"})).start()
    try:
        metrics.job_submitted("square")
        base = f"http://127.0.0.1:{port}"
        text = httpx.get(f"{base}/metrics").text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        submitted = families["agentbus_jobs_submitted"]
        assert any(s.labels == {"type": "square"} and s.value >= 1 for s in submitted.samples)
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ok", "lease": "standby"}
        state["ready"] = False
        assert httpx.get(f"{base}/readyz").status_code == 503
    finally:
        server.close()


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError, match="--metrics-port each"):
            MetricsServer(taken.getsockname()[1], "127.0.0.1").start()


def test_port_zero_serves_nothing() -> None:
    server = MetricsServer(0).start()
    assert server._server is None
    server.close()


def test_http_metrics_are_labelled_by_route_template_and_echo_the_request_id() -> None:
    from prometheus_client import REGISTRY
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route
    from starlette.testclient import TestClient

    from agentbus.api.observe import ObserveMiddleware

    def ok(request: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = [Route("/jobs/{job_id}", ok), Mount("/static", routes=[Route("/x", ok)])]
    web = Starlette(
        routes=[Route("/t/{job_id}", ok), Mount("/tui", routes=inner)], middleware=[Middleware(ObserveMiddleware)]
    )

    def count(route: str, status: str) -> float:
        labels = {"method": "GET", "route": route, "status": status}
        return REGISTRY.get_sample_value("agentbus_http_requests_total", labels) or 0.0

    before = {
        r: count(r, s)
        for r, s in [
            ("/t/{job_id}", "200"),
            ("/tui/jobs/{job_id}", "200"),
            ("/tui/{path}", "404"),
            ("unmatched", "404"),
        ]
    }
    with TestClient(web) as client:
        r = client.get("/t/job-1", headers={"X-Request-ID": "abc-1"})
        assert r.headers["x-request-id"] == "abc-1"
        assert len(client.get("/t/job-2", headers={"X-Request-ID": "bad id"}).headers["x-request-id"]) == 32
        client.get("/tui/jobs/job-3")
        client.get("/tui/elsewhere")
        client.get("/nowhere/job-4")
    assert count("/t/{job_id}", "200") - before["/t/{job_id}"] == 2
    assert count("/tui/jobs/{job_id}", "200") - before["/tui/jobs/{job_id}"] == 1
    assert count("/tui/{path}", "404") - before["/tui/{path}"] == 1
    assert count("unmatched", "404") - before["unmatched"] == 1


def test_a_dispatch_carries_its_calls_trace_context_and_drops_a_malformed_one() -> None:
    from agentbus.domain import Dispatch, TaskCall

    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    d = Dispatch("d1", (TaskCall("j-0", "j", "square", {"x": 1}, 1, 0, 60, 1, trace=tp),))
    assert Dispatch.from_dict(d.to_dict()).calls[0].trace == tp
    raw = d.to_dict()
    raw["calls"][0]["trace"] = {"not": "a string"}
    assert Dispatch.from_dict(raw).calls[0].trace is None
    del raw["calls"][0]["trace"]  # from a sender without tracing
    assert Dispatch.from_dict(raw).calls[0].trace is None


def test_a_jobs_trace_ids_come_from_its_root_job() -> None:
    from agentbus.observability import tracing

    assert tracing.job_ids("abc") == tracing.job_ids("abc-4") == tracing.job_ids("abc-4-2")
    assert tracing.job_ids("abc") != tracing.job_ids("abd")
    assert tracing.current() is None and tracing.for_job("abc") is None  # off unless configured
