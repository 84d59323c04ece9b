"""Service fixtures: a real PostgreSQL and a real Redis.

Each test gets its own PostgreSQL database (cloned from a migrated template) and a
flushed Redis database number. Under CI=true an unreachable service fails the run
instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import psycopg2
import pytest
import redis

PG_ADMIN_URL = os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("AGENTBUS_TEST_REDIS", "redis://127.0.0.1:6379/15")
TEMPLATE = f"agentbus_test_template_{os.getpid()}"  # one per pytest session: sessions may overlap


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable: {exc}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _pg_admin() -> psycopg2.extensions.connection:
    u = urlparse(PG_ADMIN_URL)
    conn = psycopg2.connect(
        host=u.hostname,
        port=u.port or 5432,
        user=u.username,
        password=u.password,
        dbname=u.path.lstrip("/") or "postgres",
        connect_timeout=5,
    )
    conn.autocommit = True
    return conn


def _db_url(name: str) -> str:
    u = urlparse(PG_ADMIN_URL)
    return u._replace(path=f"/{name}").geturl()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    from agentbus.store import Repositories

    try:
        admin = _pg_admin()
    except psycopg2.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        cur.execute(f"CREATE DATABASE {TEMPLATE}")
    store = Repositories.from_url(_db_url(TEMPLATE))
    store.migrate()
    store.close()
    yield TEMPLATE
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
    admin.close()


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test."""
    name = f"agentbus_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    yield _db_url(name)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    from agentbus.store import Repositories

    url = f"sqlite:///{tmp_path / 'agentbus.db'}"
    store = Repositories.from_url(url)
    store.migrate()
    store.close()
    return url


@pytest.fixture(params=["postgresql", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[object]:
    """The same tests against every backend."""
    from agentbus.store import Repositories

    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    s = Repositories.from_url(url)
    yield s
    s.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A flushed Redis database for this test."""
    conn = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        conn.flushdb()
    except redis.ConnectionError as exc:
        _unavailable("Redis", exc)
    yield REDIS_URL
    conn.flushdb()
    conn.close()


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()
