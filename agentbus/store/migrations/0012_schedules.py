"""Later and recurring jobs.

``ab_jobs`` gains ``run_at`` (a job submitted for later waits as ``scheduled`` until then) and
``schedule_id``/``schedule_tick`` (the tick of a schedule that made the job): unique together, so
two orchestrators firing one tick at once (a failover, a race) make one job. Both indexes are
partial: the submit path of a job with neither (nearly every job) maintains neither.
``ab_schedules`` holds the schedules.
"""

from peewee import BooleanField, CharField, DoubleField, IntegerField, Model, TextField
from playhouse.migrate import migrate as run


class Schedule(Model):
    id = CharField(primary_key=True, max_length=40)
    tenant = CharField(max_length=100)
    name = CharField(max_length=200)
    agent = CharField(max_length=200)
    input = TextField()
    cron = CharField(max_length=200)
    timezone = CharField(max_length=64)
    catch_up = CharField(max_length=20)
    paused = BooleanField(default=False)
    origin = CharField(max_length=10)
    next_tick = IntegerField()
    last_tick = IntegerField(null=True)
    last_job_id = CharField(max_length=120, null=True)
    created_at = DoubleField()
    updated_at = DoubleField()

    class Meta:
        table_name = "ab_schedules"
        indexes = ((("tenant", "name"), True), (("paused", "next_tick"), False))


def up(migrator, db):
    run(
        migrator.add_column("ab_jobs", "run_at", DoubleField(null=True)),
        migrator.add_column("ab_jobs", "schedule_id", CharField(max_length=40, null=True)),
        migrator.add_column("ab_jobs", "schedule_tick", IntegerField(null=True)),
    )
    db.execute_sql("CREATE INDEX IF NOT EXISTS ab_jobs_due ON ab_jobs (run_at) WHERE state = 'scheduled'")
    db.execute_sql(
        "CREATE UNIQUE INDEX IF NOT EXISTS ab_jobs_schedule_tick ON ab_jobs (schedule_id, schedule_tick) "
        "WHERE schedule_id IS NOT NULL"
    )
    with db.bind_ctx([Schedule]):
        db.create_tables([Schedule], safe=True)


def down(migrator, db):
    with db.bind_ctx([Schedule]):
        db.drop_tables([Schedule], safe=True)
    db.execute_sql("DROP INDEX IF EXISTS ab_jobs_schedule_tick")
    db.execute_sql("DROP INDEX IF EXISTS ab_jobs_due")
    run(
        migrator.drop_column("ab_jobs", "schedule_tick"),
        migrator.drop_column("ab_jobs", "schedule_id"),
        migrator.drop_column("ab_jobs", "run_at"),
    )
