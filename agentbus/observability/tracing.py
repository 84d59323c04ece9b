"""OpenTelemetry traces: one trace per job, API → orchestrator replays → worker calls.

Off unless ``AGENTBUS_TRACING`` names an exporter: ``otlp`` (the OTLP/HTTP exporter, installed
with ``agentbus[otlp]`` and configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables),
``console``, or ``file:DIR`` (each process appends its finished spans to ``DIR/<role>-<pid>.jsonl``:
for tests and for reading a trace without a collector). Off, every call here is a no-op.

How the spans of a job meet: a job's trace id and its root span id are derived from the job's id
(the root job's, so sub-agents join their parent's trace). The API's ``job.submit`` span takes
those ids, and every replay of the job in the orchestrator (``job.advance``) is its child, from
whichever process and however late. A replay's context rides to the workers inside the signed
dispatch (``TaskCall.trace``, a W3C traceparent): each ``task.call`` span is the child of the
replay that dispatched it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
_ids: ContextVar[tuple[int, int] | None] = ContextVar("agentbus_trace_ids", default=None)
_enabled = False
TRACEPARENT_MAX = 64


def job_ids(job_id: str) -> tuple[int, int]:
    """The trace id and root span id of a job's trace (its root job's: ``<root>-<seq>`` children share it)."""
    digest = hashlib.sha256(job_id.split("-", 1)[0].encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1


def configure_tracing(role: str, spec: str) -> None:
    """Install a tracer provider exporting to ``spec`` (see the module's docstring); "" leaves tracing off."""
    global _enabled
    if not spec:
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class JobIds(RandomIdGenerator):
        """Random ids, but a job's root span takes the ids derived from the job."""

        def generate_trace_id(self) -> int:
            forced = _ids.get()
            return forced[0] if forced else super().generate_trace_id()

        def generate_span_id(self) -> int:
            forced = _ids.get()
            return forced[1] if forced else super().generate_span_id()

    provider = TracerProvider(resource=Resource.create({"service.name": f"agentbus-{role}"}), id_generator=JobIds())
    if spec == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            from agentbus.domain.errors import ConfigError

            raise ConfigError("AGENTBUS_TRACING=otlp needs the OTLP exporter: pip install 'agentbus[otlp]'") from None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif spec == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif spec.startswith("file:"):
        provider.add_span_processor(SimpleSpanProcessor(_FileExporter(spec[5:], role)))
    else:
        from agentbus.domain.errors import ConfigError

        raise ConfigError(f"AGENTBUS_TRACING must be otlp, console or file:DIR, got {spec!r}")
    trace.set_tracer_provider(provider)
    _enabled = True


def _tracer() -> trace.Tracer:
    return trace.get_tracer("agentbus")


def submitted(job_id: str, job_type: str, started: float) -> None:
    """The job's root span (from the request's start to its acceptance), in the API."""
    if not _enabled:
        return
    token = _ids.set(job_ids(job_id))
    try:
        span = _tracer().start_span("job.submit", context=otel_context.Context(), start_time=int(started * 1e9))
    finally:
        _ids.reset(token)
    span.set_attribute("agentbus.job_id", job_id)
    span.set_attribute("agentbus.job_type", job_type)
    span.end()


@contextlib.contextmanager
def advancing(job_id: str) -> Iterator[None]:
    """A replay of the job in the orchestrator: a child of the job's root span; current meanwhile."""
    if not _enabled:
        yield
        return
    trace_id, span_id = job_ids(job_id)
    root = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    parent = trace.set_span_in_context(NonRecordingSpan(root))
    with _tracer().start_as_current_span("job.advance", context=parent) as span:
        span.set_attribute("agentbus.job_id", job_id)
        yield


def for_job(job_id: str) -> str | None:
    """The job's root span as a traceparent: the parent of calls sent outside a replay (retries, recovery)."""
    if not _enabled:
        return None
    trace_id, span_id = job_ids(job_id)
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def current() -> str | None:
    """The current span as a W3C traceparent, for a message (None when tracing is off)."""
    if not _enabled:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def call_finished(
    trace_parent: str | None, task: str, task_id: str, attempt: int, outcome: str, started: float | None
) -> None:
    """A worker's call, from the start of its slot to its outcome: a child of the replay that sent it."""
    if not _enabled or not trace_parent:
        return
    parent = _propagator.extract({"traceparent": trace_parent})
    start = int((started or time.time()) * 1e9)
    span = _tracer().start_span("task.call", context=parent, start_time=start)
    for k, v in (("task", task), ("task_id", task_id), ("attempt", attempt), ("outcome", outcome)):
        span.set_attribute(f"agentbus.{k}", v)
    if outcome in ("failed", "retrying"):
        span.set_status(trace.StatusCode.ERROR)
    span.end()


def valid_traceparent(value: Any) -> str | None:
    """A message's trace field when it is a short string (else dropped: traces are never worth a refusal)."""
    return value if isinstance(value, str) and 0 < len(value) <= TRACEPARENT_MAX else None


class _FileExporter(SpanExporter):
    """Finished spans as JSON lines in ``DIR/<role>-<pid>.jsonl``."""

    def __init__(self, directory: str, role: str) -> None:
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, f"{role}-{os.getpid()}.jsonl")

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        with open(self.path, "a") as f:
            for s in spans:
                f.write(s.to_json(indent=None) + "\n")
        return SpanExportResult.SUCCESS
