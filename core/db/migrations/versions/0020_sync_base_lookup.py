"""The sync-base trigger looks up its row's metadata by the primary key again.

`strongroom_sync_base()` (core/db/sync_bases.py, PostgreSQL only) compared
`sync_rows.table_name` with TG_TABLE_NAME, which is of type `name` with collation "C":
the comparison left the primary key's first column (default collation) unusable, so every UPDATE of a synced row read the whole
of sync_rows (a 100k-row update on a site with 400k rows of sync metadata ran for over
16 minutes). The function is replaced by the one that casts; SQLite's triggers name
their table as a literal and are unchanged. Downgrading keeps the fixed function: the
old one differed only in speed.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

from strongroom.core.db import sync_bases

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(sync_bases._PG_FUNCTION))


def downgrade() -> None:
    pass
