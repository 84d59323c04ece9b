"""Memory at scale: each item's int8 code (so a replica loads a namespace without reading the
float32 vectors) and a per-tenant live-item counter (so the tenant cap is exact under concurrent
writers instead of a cached count)."""

from peewee import BlobField, CharField, IntegerField, Model, PostgresqlDatabase
from playhouse.migrate import migrate as run


class MemoryTenant(Model):
    tenant = CharField(primary_key=True, max_length=100)
    items = IntegerField(default=0)

    class Meta:
        table_name = "ab_memory_tenants"


def up(migrator, db):
    run(migrator.add_column("ab_memory_items", "code", BlobField(null=True)))
    if isinstance(db, PostgresqlDatabase):
        # A 384-d row (vector + code) is just over PostgreSQL's 2 kB toast threshold: every insert
        # then tried to pglz-compress the float32 vector and every read decompressed it. Rows up to
        # a page stay inline and uncompressed.
        db.execute_sql("ALTER TABLE ab_memory_items SET (toast_tuple_target = 8160)")
    with db.bind_ctx([MemoryTenant]):
        db.create_tables([MemoryTenant], safe=True)
    db.execute_sql(
        "INSERT INTO ab_memory_tenants (tenant, items) "
        "SELECT n.tenant, COUNT(i.item_id) FROM ab_memory_namespaces n "
        "JOIN ab_memory_items i ON i.namespace = n.id AND NOT i.deleted GROUP BY n.tenant"
    )


def down(migrator, db):
    with db.bind_ctx([MemoryTenant]):
        db.drop_tables([MemoryTenant], safe=True)
    run(migrator.drop_column("ab_memory_items", "code"))
