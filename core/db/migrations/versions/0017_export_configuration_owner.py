"""Who saved an export configuration (the source's export_configurations.user_id):
`export_configurations.created_by`, the actor that saved it. A scheduled run of the
configuration exports as that actor, with their permissions at run time, so a
schedule neither outlives its owner's rights nor appears in the audit trail as the
system. NULL for configurations saved before this revision: those keep running as the
system, as they did.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("export_configurations", sa.Column("created_by", sa.String(length=120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("export_configurations") as batch_op:
        batch_op.drop_column("created_by")
