"""Signals sent to jobs (``POST /jobs/{id}/signals/{name}``), kept until a ``ctx.wait_for`` takes them."""

from peewee import AutoField, CharField, DoubleField, Model, TextField


class Signal(Model):
    id = AutoField()
    job_id = CharField(max_length=120)
    tenant = CharField(max_length=100)
    name = CharField(max_length=100)
    payload = TextField()
    idempotency_key = CharField(max_length=200, null=True)
    consumed_by = CharField(max_length=160, null=True)
    created_at = DoubleField()
    consumed_at = DoubleField(null=True)

    class Meta:
        table_name = "ab_signals"
        indexes = (
            (("job_id", "name", "id"), False),
            (("job_id", "idempotency_key"), True),
            (("consumed_by",), True),
        )


def up(migrator, db):
    with db.bind_ctx([Signal]):
        db.create_tables([Signal], safe=True)


def down(migrator, db):
    with db.bind_ctx([Signal]):
        db.drop_tables([Signal], safe=True)
