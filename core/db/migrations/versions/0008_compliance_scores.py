"""Compliance score history: one row per day, the day's latest score and its areas.

A score that is only ever computed now cannot show a trend, nor that it fell last week
and was put right; `compliance_scores` keeps one row per UTC day, overwritten by the
day's later reports.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
import sqlalchemy as sa
import strongroom.core.db.types
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compliance_scores",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("areas", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                  nullable=False),
        sa.Column("recorded_at", strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_compliance_scores")),
    )


def downgrade() -> None:
    op.drop_table("compliance_scores")
