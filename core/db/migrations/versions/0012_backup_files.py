"""`backups.file_count`, `backups.file_bytes`, `backups.files_missing`: the client files
a snapshot carries (issue 19 part 3), so `backup list`, health and the integrity job
report them without opening the repository. NULL for snapshots written before.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_COLUMNS = ("file_count", "file_bytes", "files_missing")


def upgrade() -> None:
    op.add_column("backups", sa.Column("file_count", sa.BigInteger(), nullable=True))
    op.add_column("backups", sa.Column("file_bytes", sa.BigInteger(), nullable=True))
    op.add_column("backups", sa.Column("files_missing", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backups") as batch_op:
        for name in reversed(_COLUMNS):
            batch_op.drop_column(name)
