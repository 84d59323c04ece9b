"""Agent memory: namespaces (per tenant) and their items, with a per-namespace change counter."""

from peewee import BlobField, BooleanField, CharField, DoubleField, IntegerField, Model, TextField


class MemoryNamespace(Model):
    id = CharField(primary_key=True, max_length=240)
    tenant = CharField(max_length=100)
    name = CharField(max_length=120)
    dim = IntegerField()
    embedder = CharField(max_length=40, null=True)
    version = IntegerField(default=0)
    generation = CharField(max_length=40)
    created_at = DoubleField()

    class Meta:
        table_name = "ab_memory_namespaces"
        indexes = ((("tenant", "name"), True),)


class MemoryItem(Model):
    namespace = CharField(max_length=240)
    item_id = CharField(max_length=200)
    text = TextField(null=True)
    metadata = TextField(null=True)
    vector = BlobField()
    expires_at = DoubleField(null=True)
    version = IntegerField()
    deleted = BooleanField(default=False)
    created_at = DoubleField()
    updated_at = DoubleField()

    class Meta:
        table_name = "ab_memory_items"
        primary_key = False
        indexes = ((("namespace", "item_id"), True), (("namespace", "version"), False))


def up(migrator, db):
    with db.bind_ctx([MemoryNamespace, MemoryItem]):
        db.create_tables([MemoryNamespace, MemoryItem], safe=True)


def down(migrator, db):
    with db.bind_ctx([MemoryNamespace, MemoryItem]):
        db.drop_tables([MemoryItem, MemoryNamespace], safe=True)
