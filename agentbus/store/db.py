"""Opening the database from a URL, migrations, and translating driver errors."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import unquote, urlparse

import peewee
from playhouse.migrations import Runner
from playhouse.pool import PooledPostgresqlDatabase

from agentbus.domain.errors import ConfigError, Unavailable

P = ParamSpec("P")
R = TypeVar("R")

MIGRATIONS = Path(__file__).with_name("migrations")


def open_database(url: str, max_connections: int = 32) -> peewee.Database:
    """``postgresql://user:pw@host:port/db`` or ``sqlite:///path/to/file.db``."""
    parsed = urlparse(url)
    if parsed.scheme in ("postgres", "postgresql"):
        return PooledPostgresqlDatabase(
            unquote(parsed.path.lstrip("/")) or "postgres",
            user=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            max_connections=max_connections,
            stale_timeout=300,
            timeout=10,
            connect_timeout=5,
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


def translate_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a lost or refused database connection into ``Unavailable``."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            store: Any = args[0]
            try:
                store.db.close()
            except Exception:
                pass
            if "database is locked" in str(exc):
                raise Unavailable("database is busy, try again") from None
            raise Unavailable(f"database unavailable: {str(exc).strip() or type(exc).__name__}") from None

    return wrapper


def sqlite_path_for(root: str | os.PathLike[str]) -> str:
    return f"sqlite:///{Path(root).resolve() / 'agentbus.db'}"
