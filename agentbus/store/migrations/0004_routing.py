"""Routing: each task's priority, concurrency key and the reason for where it went."""

from peewee import CharField, IntegerField, TextField
from playhouse.migrate import migrate as run


def up(migrator, db):
    run(
        migrator.add_column("ab_steps", "priority", IntegerField(default=0)),
        migrator.add_column("ab_steps", "concurrency_key", CharField(max_length=200, null=True)),
        migrator.add_column("ab_steps", "route_reason", TextField(null=True)),
        migrator.add_index("ab_steps", ("concurrency_key", "state"), False),
    )


def down(migrator, db):
    run(
        migrator.drop_index("ab_steps", "ab_steps_concurrency_key_state"),
        migrator.drop_column("ab_steps", "route_reason"),
        migrator.drop_column("ab_steps", "concurrency_key"),
        migrator.drop_column("ab_steps", "priority"),
    )
