"""The HTTP API role (starlette + uvicorn)."""

from agentbus.api.app import create_app, run_api

__all__ = ["create_app", "run_api"]
