"""Approvals record the API key that answered them: ``answered_by`` is the answerer's own note."""

from peewee import CharField
from playhouse.migrate import migrate as run


def up(migrator, db):
    run(migrator.add_column("ab_approvals", "answered_key", CharField(max_length=40, null=True)))


def down(migrator, db):
    run(migrator.drop_column("ab_approvals", "answered_key"))
