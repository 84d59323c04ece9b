"""Indexes for the purge (``store/retention.py``): old finished jobs by ``finished_at`` (a range scan,
not a scan of every job per batch), and a purged approval's webhook deliveries by ``approval_id``."""

from playhouse.migrate import migrate as run


def up(migrator, db):
    run(
        migrator.add_index("ab_jobs", ("finished_at",), False),
        migrator.add_index("ab_webhook_deliveries", ("approval_id",), False),
    )


def down(migrator, db):
    run(
        migrator.drop_index("ab_webhook_deliveries", "ab_webhook_deliveries_approval_id"),
        migrator.drop_index("ab_jobs", "ab_jobs_finished_at"),
    )
