"""An index of the KEKs that wrap live data keys.

A sync pass checks, before any row moves, that both sites' live keys are wrapped by the
same KEKs (core.sync.keys.kek_ids_in_use). As `SELECT DISTINCT kek_id` that read every
key row, one per client (55 ms at 100k clients on PostgreSQL, three times that at 300k),
so a pass with nothing to move grew with the practice. With this partial index the
distinct KEKs are found by one index probe each (a loose index scan).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_LIVE = sa.text("state <> 'destroyed'")


def upgrade() -> None:
    op.create_index("ix_data_keys_live_kek", "data_keys", ["kek_id"],
                    postgresql_where=_LIVE, sqlite_where=_LIVE)


def downgrade() -> None:
    op.drop_index("ix_data_keys_live_kek", table_name="data_keys")
