"""Tenants and API keys: every job and approval belongs to a tenant; idempotency keys are per tenant."""

from peewee import CharField, DoubleField, Model, TextField
from playhouse.migrate import migrate as run


class ApiKey(Model):
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
        indexes = ((("tenant",), False),)


def up(migrator, db):
    with db.bind_ctx([ApiKey]):
        db.create_tables([ApiKey], safe=True)
    run(
        migrator.add_column("ab_jobs", "tenant", CharField(max_length=100, default="default")),
        migrator.add_column("ab_approvals", "tenant", CharField(max_length=100, default="default")),
        migrator.drop_index("ab_jobs", "job_idempotency_key"),
        migrator.add_index("ab_jobs", ("tenant", "idempotency_key"), True),
        migrator.add_index("ab_jobs", ("tenant", "created_at"), False),
        migrator.add_index("ab_jobs", ("tenant", "state"), False),
    )


def down(migrator, db):
    run(
        migrator.drop_index("ab_jobs", "ab_jobs_tenant_state"),
        migrator.drop_index("ab_jobs", "ab_jobs_tenant_created_at"),
        migrator.drop_index("ab_jobs", "ab_jobs_tenant_idempotency_key"),
        migrator.add_index("ab_jobs", ("idempotency_key",), True),
        migrator.drop_column("ab_approvals", "tenant"),
        migrator.drop_column("ab_jobs", "tenant"),
    )
    with db.bind_ctx([ApiKey]):
        db.drop_tables([ApiKey], safe=True)
