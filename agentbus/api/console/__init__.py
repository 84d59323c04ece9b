"""The web console, served by the API role at ``/ui``: jobs, steps, approvals, fleet, job types, memory.

Server-rendered Jinja2 pages with a small script for live updates (no build step, nothing from a
CDN: the templates and static files ship inside the package). Signed in with an API key, scoped
by its tenant and scopes exactly like the JSON API, whose store calls it uses.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from agentbus.api.console import inbox, jobs, other, signin
from agentbus.api.console._base import HERE, PREFIX


def mounted() -> list[BaseRoute]:
    """What the API's app adds to its routes: ``/ui`` itself (the app does not redirect slashes) and
    everything under it."""
    return [Route(PREFIX, signin.home, methods=["GET"], include_in_schema=False), Mount(PREFIX, routes=routes())]


def routes() -> list[BaseRoute]:
    """The console's routes, relative to ``PREFIX``."""
    return [
        Route("/", signin.home, methods=["GET"]),
        Route("/login", signin.login_form, methods=["GET"]),
        Route("/login", signin.login, methods=["POST"]),
        Route("/logout", signin.logout, methods=["POST"]),
        Route("/jobs", jobs.jobs, methods=["GET"]),
        Route("/jobs/live", jobs.jobs_live, methods=["GET"]),
        Route("/jobs/{job_id}", jobs.job, methods=["GET"]),
        Route("/jobs/{job_id}/live", jobs.job_live, methods=["GET"]),
        Route("/jobs/{job_id}/events", jobs.job_events, methods=["GET"]),
        Route("/jobs/{job_id}/cancel", jobs.cancel, methods=["POST"]),
        Route("/jobs/{job_id}/resubmit", jobs.resubmit, methods=["POST"]),
        Route("/approvals", inbox.approvals, methods=["GET"]),
        Route("/approvals/{approval_id}", inbox.answer, methods=["POST"]),
        Route("/fleet", other.fleet, methods=["GET"]),
        Route("/types", other.types, methods=["GET"]),
        Route("/types/{name}", other.job_type, methods=["GET"]),
        Route("/types/{name}", other.submit_type, methods=["POST"]),
        Route("/memory", other.memory, methods=["GET"]),
        Route("/memory/{namespace}", other.namespace, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="console-static"),
    ]


__all__ = ["PREFIX", "mounted", "routes"]
