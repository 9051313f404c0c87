"""Scheduled exports (issue 20 part 6): `export_configurations.next_export_at`, when the
daemon next runs a configuration that has a `schedule` (computed from the database, so
a restart neither forgets nor repeats a run), and `password_credential`, the name of the
systemd credential holding an encrypted scheduled export's ZIP password (never the
password itself).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

import strongroom.core.db.types

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("export_configurations",
                  sa.Column("next_export_at", strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True))
    op.add_column("export_configurations", sa.Column("password_credential", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("export_configurations") as batch_op:
        batch_op.drop_column("password_credential")
        batch_op.drop_column("next_export_at")
