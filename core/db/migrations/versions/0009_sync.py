"""Sync between sites: a site identity with its hybrid logical clock, per-row version
metadata, stamping marks, the quarantine, and peer health.

- `sync_site` holds one row: this database's stable site id (made here for databases
  that predate sync, by `init` for new ones) and the last hybrid-logical-clock value it
  issued, so "newer" means the same on every site.
- `sync_rows` keeps, per synced row, the version metadata sync compares: the origin
  site and HLC of the row's current version, its version vector (site -> HLC of that
  site's last edit), per-field dots (which edit set each field) and per-field content
  hashes (how the stamper notices a local edit without a trigger on every writer), the
  peer it came from (no echo), and the local `sync_version` it was stamped at. It lives
  beside the clinical tables rather than in them, so their rows and checksums stay as
  backups and exports know them.
- `sync_marks`: per table, the highest `sync_version` the stamper has looked at.
- `sync_quarantine`: rows a peer sent that failed validation, with the reason; never
  applied.
- `sync_peers` gains the peer's site id and its failure bookkeeping (retries with
  backoff, last error) and a lease that refuses two passes of one pair at once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
import uuid

import sqlalchemy as sa
import strongroom.core.db.types
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_WHEN = strongroom.core.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    site = op.create_table(
        "sync_site",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("hlc", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_site")),
    )
    from strongroom.core.db.types import utcnow
    op.bulk_insert(site, [{"id": str(uuid.uuid4()), "hlc": 0, "created_at": utcnow()}])
    op.create_table(
        "sync_rows",
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("row_id", sa.Uuid(), nullable=False),
        sa.Column("origin", sa.String(length=36), nullable=False),
        sa.Column("hlc", sa.BigInteger(), nullable=False),
        sa.Column("vv", _JSON, nullable=False),
        sa.Column("dots", _JSON, nullable=False),
        sa.Column("hashes", _JSON, nullable=False),
        sa.Column("source", sa.String(length=36), nullable=True),
        sa.Column("pending", _JSON, nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("table_name", "row_id", name=op.f("pk_sync_rows")),
    )
    op.create_table(
        "sync_marks",
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("table_name", name=op.f("pk_sync_marks")),
    )
    op.create_table(
        "sync_quarantine",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("peer_id", sa.Uuid(), nullable=True),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("row_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("image", _JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("received_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_quarantine")),
    )
    op.create_index(op.f("ix_sync_quarantine_status"), "sync_quarantine", ["status"])
    with op.batch_alter_table("sync_peers") as batch:
        batch.add_column(sa.Column("site_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("last_attempt_at", _WHEN, nullable=True))
        batch.add_column(sa.Column("next_attempt_at", _WHEN, nullable=True))
        batch.add_column(sa.Column("clock_skew_seconds", sa.Float(), nullable=True))
    # A watermark is a (sync_version, row id) cursor: one bulk write gives many rows one
    # version, and a batch may end inside them.
    with op.batch_alter_table("sync_state") as batch:
        batch.add_column(sa.Column("after_id", sa.Uuid(), nullable=True))
    op.create_table(
        "sync_leases",
        sa.Column("pair", sa.String(length=80), nullable=False),
        sa.Column("holder", sa.String(length=120), nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("pair", name=op.f("pk_sync_leases")),
    )


def downgrade() -> None:
    op.drop_table("sync_leases")
    with op.batch_alter_table("sync_state") as batch:
        batch.drop_column("after_id")
    with op.batch_alter_table("sync_peers") as batch:
        for name in ("clock_skew_seconds", "next_attempt_at", "last_attempt_at", "last_error", "failures",
                     "site_id"):
            batch.drop_column(name)
    op.drop_index(op.f("ix_sync_quarantine_status"), table_name="sync_quarantine")
    op.drop_table("sync_quarantine")
    op.drop_table("sync_marks")
    op.drop_table("sync_rows")
    op.drop_table("sync_site")
