"""Four-eyes backup retention and chain compaction.

`backup_prune_requests`: snapshots someone asked to forget, held until a different
person approves. `backups.superseded_by`: the snapshot compaction wrote to replace this
one on a new chain (a plain UUID, see the model).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import strongroom.core.db.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "backup_prune_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("configuration_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("snapshot_ids", _JSON, nullable=False),
        sa.Column("plan", _JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=120), nullable=False),
        sa.Column("requested_at", strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("approved_by", sa.String(length=120), nullable=True),
        sa.Column("approved_at", strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("executed_at", strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["configuration_id"], ["backup_configurations.id"],
                                name=op.f("fk_backup_prune_requests_configuration_id_backup_configurations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_prune_requests")),
    )
    op.create_index(op.f("ix_backup_prune_requests_status"), "backup_prune_requests", ["status"])
    op.add_column("backups", sa.Column("superseded_by", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backups") as batch_op:
        batch_op.drop_column("superseded_by")
    op.drop_index(op.f("ix_backup_prune_requests_status"), table_name="backup_prune_requests")
    op.drop_table("backup_prune_requests")
