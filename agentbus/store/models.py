"""Tables. Timestamps are unix seconds (float); JSON values are stored as text."""

from __future__ import annotations

from peewee import SQL, AutoField, BlobField, BooleanField, CharField, DoubleField, IntegerField, Model, TextField


class BaseModel(Model):
    class Meta:
        legacy_table_names = False


class Job(BaseModel):
    id = CharField(primary_key=True, max_length=120)
    type = CharField(max_length=200)
    state = CharField(max_length=20)
    input = TextField()
    result = TextField(null=True)
    error_type = CharField(max_length=200, null=True)
    error_message = TextField(null=True)
    error_traceback = TextField(null=True)
    idempotency_key = CharField(max_length=200, null=True)
    priority = IntegerField(default=0)
    parent_id = CharField(max_length=120, null=True)
    parent_seq = IntegerField(null=True)
    created_at = DoubleField()
    started_at = DoubleField(null=True)
    finished_at = DoubleField(null=True)
    updated_at = DoubleField()
    tenant = CharField(max_length=100, default="default")
    rerun_of = CharField(max_length=120, null=True)
    wakes_early = BooleanField(default=False, constraints=[SQL("DEFAULT FALSE")])  # see migration 0014
    run_at = DoubleField(null=True)
    schedule_id = CharField(max_length=40, null=True)
    schedule_tick = IntegerField(null=True)

    class Meta:
        table_name = "ab_jobs"
        indexes = (
            (("created_at", "id"), False),
            (("state", "updated_at"), False),
            (("tenant", "idempotency_key"), True),
        )


class Step(BaseModel):
    """A journal entry of a job: a task call, a child agent, a timer or a recorded value."""

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
    error_traceback = TextField(null=True)
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
    priority = IntegerField(default=0)
    concurrency_key = CharField(max_length=200, null=True)
    route_reason = TextField(null=True)

    class Meta:
        table_name = "ab_steps"
        indexes = (
            (("job_id", "seq"), True),
            (("job_id", "state"), False),
            (("state", "not_before"), False),
        )


MODELS: list[type[BaseModel]] = [Job, Step]


class Approval(BaseModel):
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
    answered_key = CharField(max_length=40, null=True)
    answered_at = DoubleField(null=True)
    created_at = DoubleField()
    updated_at = DoubleField()
    tenant = CharField(max_length=100, default="default")

    class Meta:
        table_name = "ab_approvals"
        indexes = ((("status", "deadline"), False), (("job_id",), False), (("created_at", "id"), False))


class WebhookDelivery(BaseModel):
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


class JobEvent(BaseModel):
    """A job's and its approvals' state changes, in order: what GET /jobs/{id}/events streams."""

    id = AutoField()
    job_id = CharField(max_length=120)
    at = DoubleField()
    kind = CharField(max_length=20)
    data = TextField()

    class Meta:
        table_name = "ab_job_events"
        indexes = ((("job_id", "at"), False),)


class ApiKey(BaseModel):
    """An API key: only the SHA-256 of its secret is kept, with a display prefix."""

    id = CharField(primary_key=True, max_length=32)
    tenant = CharField(max_length=100)
    name = CharField(max_length=200, null=True)
    prefix = CharField(max_length=40)
    secret_hash = CharField(max_length=64)
    scopes = TextField()
    created_at = DoubleField()
    expires_at = DoubleField(null=True)
    revoked_at = DoubleField(null=True)
    last_used_at = DoubleField(null=True)

    class Meta:
        table_name = "ab_api_keys"


class MemoryNamespace(BaseModel):
    """A tenant's memory namespace. ``version`` counts its changes: writers bump it under the row's
    lock, so a reader that has applied every item up to version V has missed nothing below it."""

    id = CharField(primary_key=True, max_length=240)
    tenant = CharField(max_length=100)
    name = CharField(max_length=120)
    dim = IntegerField()
    embedder = CharField(max_length=40, null=True)
    version = IntegerField(default=0)
    generation = CharField(max_length=40)
    created_at = DoubleField()
    items = IntegerField(default=0)  # live items (not deleted), kept by the writers under the row's lock

    class Meta:
        table_name = "ab_memory_namespaces"


class MemoryItem(BaseModel):
    namespace = CharField(max_length=240)
    item_id = CharField(max_length=200)
    text = TextField(null=True)
    metadata = TextField(null=True)
    vector = BlobField()
    # the float32 scale (little-endian) then the uint8 codes of the normalised vector: what an
    # int8-only replica loads, a quarter of the vector's bytes (NULL: rows from before 0008)
    code = BlobField(null=True)
    expires_at = DoubleField(null=True)
    version = IntegerField()
    deleted = BooleanField(default=False)
    created_at = DoubleField()
    updated_at = DoubleField()

    class Meta:
        table_name = "ab_memory_items"
        primary_key = False


class MemoryTenant(BaseModel):
    """A tenant's live memory items (not deleted), kept in the writers' transactions: the exact cap."""

    tenant = CharField(primary_key=True, max_length=100)
    items = IntegerField(default=0)

    class Meta:
        table_name = "ab_memory_tenants"


class Schedule(BaseModel):
    """A recurring job: an agent run on the ticks of a cron expression in a time zone."""

    id = CharField(primary_key=True, max_length=40)
    tenant = CharField(max_length=100)
    name = CharField(max_length=200)
    agent = CharField(max_length=200)
    input = TextField()
    cron = CharField(max_length=200)
    timezone = CharField(max_length=64)
    catch_up = CharField(max_length=20)
    paused = BooleanField(default=False)
    origin = CharField(max_length=10)  # "api", or "app" (declared with @app.agent(schedule=...))
    next_tick = IntegerField()
    last_tick = IntegerField(null=True)
    last_job_id = CharField(max_length=120, null=True)
    created_at = DoubleField()
    updated_at = DoubleField()

    class Meta:
        table_name = "ab_schedules"


class Signal(BaseModel):
    """A signal sent to a job (``POST /jobs/{id}/signals/{name}``); ``id`` is its place in the order
    signals arrived, ``consumed_by`` the id of the wait step that took it (NULL: kept for a wait)."""

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


MODELS.extend(
    [Approval, WebhookDelivery, JobEvent, ApiKey, MemoryNamespace, MemoryItem, MemoryTenant, Schedule, Signal]
)
