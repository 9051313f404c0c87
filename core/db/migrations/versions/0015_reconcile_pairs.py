"""Duplicate-client reconciliation (issue 20 part 5): `reconcile_pairs`, the candidate
pairs the reconcile job found within a practice. A pair holds client ids, a score and
reason codes (`name~0.93`, `dob=`, `phone=`, `email=`), never a value; its status is
open, merged or dismissed, with who decided and when, and for a merge the record of
every row moved (ids only), so `reconcile undo` moves exactly those back.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import strongroom.core.db.types

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconcile_pairs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("practice_id", sa.Uuid(), nullable=False),
        sa.Column("client_a", sa.Uuid(), nullable=False),
        sa.Column("client_b", sa.Uuid(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reasons", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("found_at", strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=120), nullable=True),
        sa.Column("decided_at", strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("merge_record", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True),
        sa.ForeignKeyConstraint(["practice_id"], ["practices.id"]),
        sa.ForeignKeyConstraint(["client_a"], ["clients.id"]),
        sa.ForeignKeyConstraint(["client_b"], ["clients.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_a", "client_b", name="uq_reconcile_pairs_clients"),
    )
    op.create_index("ix_reconcile_pairs_practice_status", "reconcile_pairs", ["practice_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_reconcile_pairs_practice_status", table_name="reconcile_pairs")
    op.drop_table("reconcile_pairs")
