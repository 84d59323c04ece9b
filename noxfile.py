"""nox sessions: tests, lint, typecheck, bench. Tests need PostgreSQL and Redis (see README)."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("ruff", "check", "agentbus", "tests", "bench")
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Throughput/latency against raw RQ and Celery, recovery times, memory search; writes docs/benchmarks.md."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "bench.throughput", "--write-docs", *session.posargs)
    session.run("python", "-m", "bench.io", "--write-docs")
    session.run("python", "-m", "bench.jobs", "--write-docs")
    session.run("python", "-m", "bench.recovery", "--write-docs")
    session.run("python", "-m", "bench.memory", "--write-docs")


@nox.session
def chaos(session: nox.Session) -> None:
    """Faults under load, each ending with a check that no accepted job was lost (docs/reliability.md).

    Needs PostgreSQL and a redis-server binary (each scenario starts its own); a few minutes."""
    session.install("-e", ".")
    session.run("python", "-m", "bench.chaos", *session.posargs)
