"""An (id, data_checksum) index on every synced table, in place of the sync_version one.

The consistency check (`strongroom sync check`, and the integrity job when peers exist)
reads every row's id and checksum, and read them from the table itself: on
therapy_sessions that means scanning every note to reach 64 characters a row. With
this index SQLite scans the index alone (covering), in id order, and PostgreSQL can
answer from the index. The plain sync_version index of the same tables is dropped: the
(sync_version, id) index of migration 0009 serves every lookup by sync_version, so the
tables keep as many indexes as they had and writes cost no more. Tables that do not
sync (users, client_files) keep theirs, under the same name.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_SYNCED = ("practices", "staff", "services", "clients", "therapy_sessions")


def upgrade() -> None:
    for table in _SYNCED:
        op.drop_index(f"ix_{table}_sync_version", table_name=table)
        op.create_index(f"ix_{table}_id_checksum", table, ["id", "data_checksum"])


def downgrade() -> None:
    for table in _SYNCED:
        op.drop_index(f"ix_{table}_id_checksum", table_name=table)
        op.create_index(f"ix_{table}_sync_version", table, ["sync_version"])
