"""A job run again (``POST /jobs/{id}/rerun``) names the job it repeats, shown as ``rerun_of``.

A column, not an event: ``GET /jobs/{id}`` reads the job's row only, and a link kept in the
events would be lost to retention while the job it describes is still kept.
"""

from peewee import CharField
from playhouse.migrate import migrate as run


def up(migrator, db):
    run(migrator.add_column("ab_jobs", "rerun_of", CharField(max_length=120, null=True)))


def down(migrator, db):
    run(migrator.drop_column("ab_jobs", "rerun_of"))
