"""The starlette application and the api role."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware

from agentbus.api import console, status
from agentbus.api.auth import AuthMiddleware
from agentbus.api.errors import exception_handlers
from agentbus.api.guard import Guarded, breaker_states
from agentbus.api.observe import ObserveMiddleware
from agentbus.api.openapi import document
from agentbus.api.operation import RouteTable
from agentbus.api.params import ParamsMiddleware
from agentbus.api.state import ApiState
from agentbus.api.submits import Submits
from agentbus.api.table import OPERATIONS
from agentbus.bus import ControlStream, Fleet, JobNotifier, JobWatch, connect, ping
from agentbus.bus.ratelimit import RateLimiter
from agentbus.config import Settings, keyrings
from agentbus.domain import App
from agentbus.observability import MetricsServer, metrics
from agentbus.services import MemoryService
from agentbus.store import Repositories


def create_app(settings: Settings, app: App, repos: Repositories | None = None) -> Starlette:
    conn = connect(settings.redis_url)
    repos = repos or Repositories.from_url(settings.database_url, settings.db_pool_size, settings.db_pool_timeout_s)
    # Every PostgreSQL and Redis call of the API goes through a circuit breaker (api/guard.py), one
    # for all the repositories of the database, and takes its PostgreSQL connection from the pool
    # for that call only (store/db.py).
    pg = Guarded(None, "PostgreSQL", settings.breaker_fail_max, settings.breaker_reset_s)  # the breaker alone
    db: Any = repos.per_call(pg.over)
    redis_breaker = (settings.breaker_fail_max, settings.breaker_reset_s)
    stream: Any = Guarded(ControlStream(conn, keyrings(settings)[0], shards=settings.shards), "Redis", *redis_breaker)
    notifier: Any = Guarded(JobNotifier(conn), "Redis", *redis_breaker)
    workers: Any = Guarded(Fleet(conn, settings.worker_ttl_s), "Redis", *redis_breaker)
    # the auth middleware charges requests from the event loop (hit_async) once the lifespan started it
    own_limiter = RateLimiter(conn, url=settings.redis_url)
    limiter: Any = Guarded(own_limiter, "Redis", *redis_breaker)
    metrics.watch_breakers(lambda: breaker_states([pg, stream, notifier, workers, limiter]))
    watch = JobWatch(settings.redis_url)
    state = ApiState(
        settings,
        app,
        db.jobs,
        db.steps,
        db.approvals,
        db.events,
        db.keys,
        stream,
        lambda: ping(conn),
        notifier,
        workers,
        watch,
        db.schedules,
        db.signals,
        Submits(db.jobs, stream, watch, settings.max_running_jobs),
    )
    table = RouteTable(OPERATIONS)

    @contextlib.asynccontextmanager
    async def lifespan(web: Starlette) -> AsyncIterator[None]:
        await watch.start()  # waiters without it (no lifespan run) read the record on a timer
        await own_limiter.start()  # without it, requests are charged on a thread
        try:
            yield
        finally:
            await own_limiter.stop()
            await watch.stop()

    web = Starlette(
        # every API operation from the route table; the console under /ui beside it, with its own sign-in
        routes=[*table.routes, *console.mounted()],
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        middleware=[
            Middleware(ObserveMiddleware),  # outermost: every answer has a request id and is counted
            Middleware(AuthMiddleware, key_repo=db.keys, limiter=limiter, settings=settings, table=table),
            Middleware(ParamsMiddleware),  # inside auth: a caller without a key learns nothing from a 400
        ],
        lifespan=lifespan,
    )
    # "/jobs/" would redirect to an absolute URL built from the request's Host header: a forged
    # Host turned it into an open redirect. Paths are exact; a stray slash is a 404.
    web.router.redirect_slashes = False
    web.state.agentbus = state
    web.state.openapi = document(app, table.operations)
    web.state.status = status.Sources(conn, settings.shards)
    web.state.limiter = limiter  # the console charges its pages to the same buckets (api/console/_limits.py)
    web.state.memory = MemoryService.from_settings(db.memory, settings)
    web.state.repos = repos  # whoever runs the app closes them (tests; the process's exit)
    return web


def run_api(settings: Settings, app: App, host: str, port: int, **uvicorn_options: Any) -> None:
    import uvicorn

    from agentbus.api._http import head_limited_protocol

    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        # httptools (C) with a deadline and a size limit on request heads, which uvicorn does not
        # give it (api/_http.py): half the CPU of h11 per request (docs/benchmarks.md, third pass)
        "http": head_limited_protocol(settings.http_header_timeout_s, settings.http_max_header_bytes),
        # asyncio's loop even where uvloop is installed: uvloop measured no cheaper here (same doc)
        "loop": "asyncio",
        "timeout_keep_alive": settings.http_keepalive_s,
        # beyond this many connections or requests in flight, new requests get a 503
        "limit_concurrency": settings.http_max_concurrency,
        # client addresses come from X-Forwarded-For only behind AGENTBUS_TRUSTED_PROXIES (api/auth.py)
        "proxy_headers": False,
        **uvicorn_options,
    }
    _raise_open_files_limit(settings.http_max_concurrency)
    server = MetricsServer(settings.metrics_port).start()  # beside the API: no key, no connection limit
    try:
        uvicorn.run(create_app(settings, app), host=host, port=port, **options)
    finally:
        server.close()


def _raise_open_files_limit(connections: int) -> None:
    """Room for ``connections`` sockets plus the process's own files, within the hard limit."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections + 1024
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
