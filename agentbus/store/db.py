"""Opening the database from a URL, migrations, and translating driver errors."""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

import peewee
import psycopg2
from playhouse.migrations import Runner
from playhouse.pool import MaxConnectionsExceeded, PooledDatabase, PooledPostgresqlDatabase

from agentbus.domain.errors import ConfigError, Unavailable

P = ParamSpec("P")
R = TypeVar("R")

MIGRATIONS = Path(__file__).with_name("migrations")


_PG_URL_OPTIONS = frozenset({"options", "application_name", "sslmode"})
PING_IDLE_S = 5.0
"""A pooled connection handed back this recently is reused without a ``SELECT 1`` round trip."""


class _PooledPostgres(PooledPostgresqlDatabase):
    """peewee's pool pings every connection it hands out (a round trip per unit of work).

    A connection returned to the pool less than ``PING_IDLE_S`` ago skips the ping: its
    status was checked at check-in, and one that breaks anyway fails its first statement,
    which closes it (``translate_errors``) so that the pool never hands it out again.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._returned_at: dict[int, float] = {}

    def _is_closed(self, conn: Any) -> bool:
        if conn.closed:
            return True
        at = self._returned_at.get(id(conn))
        if at is not None and time.monotonic() - at < PING_IDLE_S:
            return False
        return bool(super()._is_closed(conn))

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        super()._close(conn, close_conn)
        if close_conn or conn.closed:
            self._returned_at.pop(id(conn), None)
        else:
            now = time.monotonic()
            self._returned_at[id(conn)] = now
            if len(self._returned_at) > 4 * (self._max_connections or 32):  # forget closed ones
                self._returned_at = {k: t for k, t in self._returned_at.items() if now - t < PING_IDLE_S}


def open_database(url: str, max_connections: int = 32, pool_timeout: float = 10.0) -> peewee.Database:
    """``postgresql://user:pw@host:port/db`` or ``sqlite:///path/to/file.db``.

    ``pool_timeout``: how long taking a connection from a full pool may wait before it fails
    with ``Unavailable`` (see ``connection_scope``).
    """
    parsed = urlparse(url)
    if parsed.scheme in ("postgres", "postgresql"):
        return _PooledPostgres(
            unquote(parsed.path.lstrip("/")) or "postgres",
            user=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            max_connections=max_connections,
            stale_timeout=300,
            timeout=pool_timeout,
            connect_timeout=5,
            # ``?options=-c synchronous_commit=off`` (libpq's option string) and the like reach the server
            **{k: v[-1] for k, v in parse_qs(parsed.query).items() if k in _PG_URL_OPTIONS},
        )
    if parsed.scheme == "sqlite":
        # sqlite:///relative.db, sqlite:////absolute/path.db (as SQLAlchemy spells them)
        path = unquote(url[len("sqlite:///") :])
        if path not in ("", ":memory:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return peewee.SqliteDatabase(
            path or ":memory:",
            pragmas={"journal_mode": "wal", "busy_timeout": 15000, "synchronous": "normal"},
            timeout=15,
        )
    raise ConfigError(f"unsupported database URL {url!r}: use postgresql://... or sqlite:///...")


def is_postgres(db: peewee.Database) -> bool:
    return isinstance(db, peewee.PostgresqlDatabase)


def migrate(db: peewee.Database) -> list[str]:
    """Create or upgrade the schema; applying it twice changes nothing."""
    try:
        with db.connection_context():
            applied: list[str] = Runner(db, directory=str(MIGRATIONS), table_name="ab_schema_migrations").up()
    except peewee.OperationalError as exc:
        raise Unavailable(f"database unavailable: {exc}".strip()) from None
    return applied


@contextlib.contextmanager
def connection_scope(db: peewee.Database) -> Iterator[None]:
    """One connection for one unit of work, handed back to the pool when it ends.

    Without it peewee keeps a connection per thread until the thread closes it: a thread
    pool larger than the connection pool starves, and a retired thread's connection is
    never returned. A full pool waits at most the pool's timeout, then fails with
    ``Unavailable`` (``busy=True``: the database is fine, this process is saturated).
    """
    if not db.is_closed():  # an enclosing scope already holds one
        yield
        return
    try:
        db.connect()
    except MaxConnectionsExceeded:
        raise Unavailable("every database connection of this process is busy; retry shortly", busy=True) from None
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        raise Unavailable(f"database unavailable: {str(exc).strip() or type(exc).__name__}") from None
    try:
        yield
    finally:
        if not db.is_closed():  # translate_errors may have closed it already
            db.close()


class ConnectionPerCall:
    """A proxy that runs every method of a repository inside its own ``connection_scope``.

    Calls from inside (a method calling another, or another repository it was given) share the
    outer call's connection.
    """

    UNSCOPED = frozenset({"close", "migrate"})

    def __init__(self, target: Any) -> None:
        self._target = target
        self._db: peewee.Database = target.db
        # SQLite (dev) has no pool to starve, and a connection per call would reopen the file
        self._scoped = isinstance(self._db, PooledDatabase)

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        if not inspect.ismethod(value) or not self._scoped or attr in self.UNSCOPED:
            return value  # attributes (``db`` is callable: a context manager) pass through

        @functools.wraps(value)
        def scoped(*args: Any, **kwargs: Any) -> Any:
            with connection_scope(self._db):
                return value(*args, **kwargs)

        setattr(self, attr, scoped)  # made once: the next lookup finds it without __getattr__
        return scoped


# peewee wraps the driver's errors only inside ``execute_sql``; a raw cursor (``execute_values``, one
# statement without BEGIN) raises psycopg2's own
_LOST = (peewee.OperationalError, peewee.InterfaceError, psycopg2.OperationalError, psycopg2.InterfaceError)


def translate_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a lost or refused database connection into ``Unavailable``."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except _LOST as exc:
            repo: Any = args[0]
            try:
                repo.db.close()
            except Exception:
                pass
            if "database is locked" in str(exc):
                raise Unavailable("database is busy, try again") from None
            raise Unavailable(f"database unavailable: {str(exc).strip() or type(exc).__name__}") from None

    return wrapper


def sqlite_path_for(root: str | os.PathLike[str]) -> str:
    return f"sqlite:///{Path(root).resolve() / 'agentbus.db'}"
