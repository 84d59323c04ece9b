"""What an operator sees: Prometheus metrics, health endpoints and structured logs for every role.

Every role records through the small functions of ``metrics`` (label values are bounded: job
types and task names come from the App's registry, queues from the routing targets, routes
are templates — never a job id). ``server`` serves ``/metrics``, ``/healthz`` and ``/readyz``
on the metrics port of the orchestrator and the workers (and ``/metrics`` beside the API).
``logs`` configures text or JSON lines that carry the ids of the job, call and request at hand.
"""

from agentbus.observability import metrics, tracing
from agentbus.observability.logs import bind, configure_logging, log_context, valid_request_id
from agentbus.observability.server import MetricsServer, Readiness, probe

__all__ = [
    "MetricsServer",
    "Readiness",
    "bind",
    "configure_logging",
    "log_context",
    "metrics",
    "probe",
    "tracing",
    "valid_request_id",
]
