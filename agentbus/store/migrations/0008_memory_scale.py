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
    run(
        migrator.add_column("ab_memory_items", "code", BlobField(null=True)),
        migrator.add_column("ab_memory_namespaces", "items", IntegerField(default=0)),
    )
    db.execute_sql(
        "UPDATE ab_memory_namespaces SET items = (SELECT COUNT(*) FROM ab_memory_items i "
        "WHERE i.namespace = ab_memory_namespaces.id AND NOT i.deleted)"
    )
    if isinstance(db, PostgresqlDatabase):
        # The vector goes out of line, uncompressed (EXTERNAL), and the code stays in the row (PLAIN):
        # a 384-d row is ~500 bytes instead of ~2 kB, so a cold load that reads only the codes reads
        # a quarter of the pages; pglz never runs on float bits (it used to: 2 kB is the default
        # threshold, and a row with its code is just over it).
        db.execute_sql(
            "ALTER TABLE ab_memory_items ALTER COLUMN vector SET STORAGE EXTERNAL, "
            "ALTER COLUMN code SET STORAGE PLAIN, SET (toast_tuple_target = 1024)"
        )
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
    run(migrator.drop_column("ab_memory_items", "code"), migrator.drop_column("ab_memory_namespaces", "items"))
