"""What every repository has: the one database all repositories of a process share."""

from __future__ import annotations

import peewee

from agentbus.store.db import is_postgres


class Repository:
    """A repository owns its tables and the SQL on them; every one is built on the same
    database object (one connection pool per process), so that one repository's statement
    can run inside another's transaction."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db

    @property
    def backend(self) -> str:
        return "postgresql" if is_postgres(self.db) else "sqlite"

    def _pg(self) -> bool:
        return is_postgres(self.db)
