"""Records retention: the archive ledger and four-eyes erasure requests.

`retention_archive`: one row per clinical row the retention job archived, timed by our
own clock (`archived_at`). Deletion is measured from that moment as well as from the
row's own dates, so a row that arrives already old (a backlog when a policy is first
set, or a date a peer planted) is archived first and only deleted after the policy's
archive-to-delete interval has passed on our clock, visible in the plan meanwhile.
The ledger carries `sync_version`, so incremental backups carry only its changed rows;
its rows are never deleted.

`erasure_requests`: when a pending request stops being approvable (`expires_at`), and
who decided it when (`decided_at`; `rejected_by` for a rejection, `approved_by` as
before for an approval).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

import strongroom.core.db.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_archive",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("row_id", sa.Uuid(), nullable=False),
        sa.Column("practice_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=True),
        sa.Column("policy_id", sa.Uuid(), nullable=True),
        sa.Column("archived_at", strongroom.core.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", strongroom.core.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sync_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_archive")),
        sa.UniqueConstraint("table_name", "row_id", name=op.f("uq_retention_archive_table_name_row_id")),
    )
    op.create_index(op.f("ix_retention_archive_sync_version"), "retention_archive", ["sync_version"])
    op.create_index(op.f("ix_retention_archive_client_id"), "retention_archive", ["client_id"])
    with op.batch_alter_table("erasure_requests") as batch_op:
        batch_op.add_column(sa.Column("expires_at", strongroom.core.db.types.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("decided_at", strongroom.core.db.types.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("rejected_by", sa.String(length=120), nullable=True))
        batch_op.create_index(batch_op.f("ix_erasure_requests_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("erasure_requests") as batch_op:
        batch_op.drop_index(batch_op.f("ix_erasure_requests_status"))
        batch_op.drop_column("rejected_by")
        batch_op.drop_column("decided_at")
        batch_op.drop_column("expires_at")
    op.drop_index(op.f("ix_retention_archive_client_id"), table_name="retention_archive")
    op.drop_index(op.f("ix_retention_archive_sync_version"), table_name="retention_archive")
    op.drop_table("retention_archive")
