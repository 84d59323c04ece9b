"""A job whose last replay waits on fewer steps than it has open (``ctx.wait_any``) says so in its row.

The orchestrator replays such a job as each of those steps finishes, not once all are over. The flag
was kept in the orchestrator's memory; in the row, an orchestrator that takes the job over after a
failover wakes it as early as the old one would have. A default in the table, not only in the model:
the hot path inserts jobs with hand-written SQL that names no such column.
"""

from peewee import SQL, BooleanField
from playhouse.migrate import migrate as run


def up(migrator, db):
    run(migrator.add_column("ab_jobs", "wakes_early", BooleanField(default=False, constraints=[SQL("DEFAULT FALSE")])))


def down(migrator, db):
    run(migrator.drop_column("ab_jobs", "wakes_early"))
