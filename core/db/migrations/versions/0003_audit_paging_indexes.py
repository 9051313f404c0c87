"""Audit paging indexes: (actor|action|table_name, id) so a filtered, newest-first page
over millions of entries is an index range scan instead of a sort.

Replaces (actor, occurred_at) and the single-column action index, which forced a sort
by id after the filter (measured: ~270 ms per filtered page over 1M rows on SQLite).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_audit_logs_actor_occurred", table_name="audit_logs")
    op.drop_index("ix_audit_logs_action", table_name="audit_logs")
    op.create_index("ix_audit_logs_actor_id", "audit_logs", ["actor", "id"])
    op.create_index("ix_audit_logs_action_id", "audit_logs", ["action", "id"])
    op.create_index("ix_audit_logs_table_id", "audit_logs", ["table_name", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_logs_table_id", table_name="audit_logs")
    op.drop_index("ix_audit_logs_action_id", table_name="audit_logs")
    op.drop_index("ix_audit_logs_actor_id", table_name="audit_logs")
    op.create_index("ix_audit_logs_action", "audit_logs", ["action"])
    op.create_index("ix_audit_logs_actor_occurred", "audit_logs", ["actor", "occurred_at"])
