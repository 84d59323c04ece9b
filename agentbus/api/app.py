"""The starlette application and the api role."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from agentbus.api import approvals, console, events, fleet, memory, routes
from agentbus.api.auth import AuthMiddleware
from agentbus.api.errors import exception_handlers
from agentbus.api.guard import Guarded
from agentbus.api.openapi import document
from agentbus.api.state import ApiState
from agentbus.bus import ControlStream, Fleet, JobNotifier, connect, ping
from agentbus.bus.ratelimit import RateLimiter
from agentbus.config import Settings, keyrings
from agentbus.domain import App
from agentbus.services import MemoryService
from agentbus.store import Store


def create_app(settings: Settings, app: App, store: Store | None = None) -> Starlette:
    conn = connect(settings.redis_url)
    # Every PostgreSQL and Redis call of the API goes through a circuit breaker (api/guard.py).
    db: Any = Guarded(store or Store.from_url(settings.database_url), "PostgreSQL", settings.breaker_fail_max,
                      settings.breaker_reset_s)  # fmt: skip
    redis_breaker = (settings.breaker_fail_max, settings.breaker_reset_s)
    stream: Any = Guarded(ControlStream(conn, keyrings(settings)[0]), "Redis", *redis_breaker)
    notifier: Any = Guarded(JobNotifier(conn), "Redis", *redis_breaker)
    workers: Any = Guarded(Fleet(conn, settings.worker_ttl_s), "Redis", *redis_breaker)
    limiter: Any = Guarded(RateLimiter(conn), "Redis", *redis_breaker)
    state = ApiState(settings, app, db, stream, lambda: ping(conn), notifier, workers)
    spec = document(app)

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(spec)

    web = Starlette(
        routes=[
            Route("/jobs", routes.submit_job, methods=["POST"]),
            Route("/jobs", routes.list_jobs, methods=["GET"]),
            Route("/jobs/{job_id}", routes.get_job, methods=["GET"]),
            Route("/jobs/{job_id}/results", routes.get_results, methods=["GET"]),
            Route("/jobs/{job_id}/cancel", routes.cancel_job, methods=["POST"]),
            Route("/jobs/{job_id}/events", events.job_events, methods=["GET"]),
            Route("/approvals", approvals.list_approvals, methods=["GET"]),
            Route("/approvals/{approval_id}", approvals.get_approval, methods=["GET"]),
            Route("/approvals/{approval_id}", approvals.answer_approval, methods=["POST"]),
            Route("/jobs/{job_id}/tasks", routes.job_tasks, methods=["GET"]),
            Route("/workers", fleet.list_workers, methods=["GET"]),
            Route("/memory/store", memory.store, methods=["POST"]),
            Route("/memory/search", memory.search_get, methods=["GET"]),
            Route("/memory/search", memory.search_post, methods=["POST"]),
            Route("/memory/namespaces", memory.list_namespaces, methods=["GET"]),
            Route("/memory/{namespace}/{item_id}", memory.get_item, methods=["GET"]),
            Route("/memory/{namespace}/{item_id}", memory.delete_item, methods=["DELETE"]),
            Route("/memory/{namespace}", memory.delete_namespace, methods=["DELETE"]),
            Route("/job-types", routes.job_types, methods=["GET"]),
            Route("/healthz", routes.healthz, methods=["GET"]),
            Route("/readyz", routes.readyz, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Mount(console.PREFIX, routes=console.routes()),  # the web console (its own cookie sign-in)
        ],
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        middleware=[Middleware(AuthMiddleware, store=db, limiter=limiter, settings=settings)],
    )
    web.state.agentbus = state
    web.state.memory = MemoryService(db, settings.embedder, settings.memory_max_batch, settings.max_memory_items)
    return web


def run_api(settings: Settings, app: App, host: str, port: int, **uvicorn_options: Any) -> None:
    import uvicorn

    uvicorn.run(create_app(settings, app), host=host, port=port, log_level="warning", access_log=False,
                **uvicorn_options)  # fmt: skip
