"""Jobs and steps keep the traceback of user code that raised, shown under the error (API, console)."""

from peewee import TextField
from playhouse.migrate import migrate as run


def up(migrator, db):
    run(
        migrator.add_column("ab_jobs", "error_traceback", TextField(null=True)),
        migrator.add_column("ab_steps", "error_traceback", TextField(null=True)),
    )


def down(migrator, db):
    run(
        migrator.drop_column("ab_steps", "error_traceback"),
        migrator.drop_column("ab_jobs", "error_traceback"),
    )
