"""Jobs and their journal."""

from peewee import CharField, DoubleField, IntegerField, Model, TextField


class Job(Model):
    id = CharField(primary_key=True, max_length=120)
    type = CharField(max_length=200)
    state = CharField(max_length=20)
    input = TextField()
    result = TextField(null=True)
    error_type = CharField(max_length=200, null=True)
    error_message = TextField(null=True)
    idempotency_key = CharField(max_length=200, null=True, unique=True)
    priority = IntegerField(default=0)
    parent_id = CharField(max_length=120, null=True)
    parent_seq = IntegerField(null=True)
    created_at = DoubleField()
    started_at = DoubleField(null=True)
    finished_at = DoubleField(null=True)
    updated_at = DoubleField()

    class Meta:
        table_name = "ab_jobs"
        indexes = ((("created_at", "id"), False), (("state", "updated_at"), False))


class Step(Model):
    id = CharField(primary_key=True, max_length=160)
    job_id = CharField(max_length=120)
    seq = IntegerField()
    kind = CharField(max_length=10)
    name = CharField(max_length=200)
    args = TextField(null=True)
    state = CharField(max_length=20)
    result = TextField(null=True)
    error_type = CharField(max_length=200, null=True)
    error_message = TextField(null=True)
    attempt = IntegerField(default=1)
    retries = IntegerField(default=0)
    timeout = DoubleField(null=True)
    backoff = DoubleField(default=0.5)
    queue = CharField(max_length=100, null=True)
    dispatch_id = CharField(max_length=100, null=True)
    worker = CharField(max_length=200, null=True)
    not_before = DoubleField(null=True)
    created_at = DoubleField()
    queued_at = DoubleField(null=True)
    started_at = DoubleField(null=True)
    finished_at = DoubleField(null=True)
    updated_at = DoubleField()

    class Meta:
        table_name = "ab_steps"
        indexes = (
            (("job_id", "seq"), True),
            (("job_id", "state"), False),
            (("state", "not_before"), False),
        )


def up(migrator, db):
    with db.bind_ctx([Job, Step]):
        db.create_tables([Job, Step], safe=True)


def down(migrator, db):
    with db.bind_ctx([Job, Step]):
        db.drop_tables([Step, Job], safe=True)
