"""The job event log behind GET /jobs/{id}/events."""

from peewee import AutoField, CharField, DoubleField, Model, TextField


class JobEvent(Model):
    id = AutoField()
    job_id = CharField(max_length=120)
    at = DoubleField()
    kind = CharField(max_length=20)
    data = TextField()

    class Meta:
        table_name = "ab_job_events"
        indexes = ((("job_id", "at"), False),)


def up(migrator, db):
    with db.bind_ctx([JobEvent]):
        db.create_tables([JobEvent], safe=True)


def down(migrator, db):
    with db.bind_ctx([JobEvent]):
        db.drop_tables([JobEvent], safe=True)
