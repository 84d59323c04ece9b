"""Approvals (human in the loop) and their webhook deliveries."""

from peewee import CharField, DoubleField, IntegerField, Model, TextField


class Approval(Model):
    """A question an agent put to people (``ctx.ask_human``); its id is the step's id."""

    id = CharField(primary_key=True, max_length=160)
    job_id = CharField(max_length=120)
    seq = IntegerField()
    prompt = TextField()
    data = TextField(null=True)
    schema = TextField(null=True)
    status = CharField(max_length=20)
    assignees = TextField()
    level = IntegerField(default=0)
    current_assignees = TextField(default="")
    timeout = DoubleField(null=True)
    on_timeout = CharField(max_length=20)
    deadline = DoubleField(null=True)
    webhook = TextField(null=True)
    decision = CharField(max_length=20, null=True)
    input = TextField(null=True)
    comment = TextField(null=True)
    answered_by = CharField(max_length=200, null=True)
    answered_at = DoubleField(null=True)
    created_at = DoubleField()
    updated_at = DoubleField()

    class Meta:
        table_name = "ab_approvals"
        indexes = ((("status", "deadline"), False), (("job_id",), False), (("created_at", "id"), False))


class WebhookDelivery(Model):
    id = CharField(primary_key=True, max_length=64)
    approval_id = CharField(max_length=160)
    url = TextField()
    event = CharField(max_length=40)
    payload = TextField()
    status = CharField(max_length=20)
    attempts = IntegerField(default=0)
    next_at = DoubleField()
    last_error = TextField(null=True)
    created_at = DoubleField()
    updated_at = DoubleField()

    class Meta:
        table_name = "ab_webhook_deliveries"
        indexes = ((("status", "next_at"), False),)


def up(migrator, db):
    with db.bind_ctx([Approval, WebhookDelivery]):
        db.create_tables([Approval, WebhookDelivery], safe=True)


def down(migrator, db):
    with db.bind_ctx([Approval, WebhookDelivery]):
        db.drop_tables([WebhookDelivery, Approval], safe=True)
