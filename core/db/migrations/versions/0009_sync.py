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

from strongroom.core.db.pg import CHANGE_LOCK_KEY

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
        batch.add_column(sa.Column("clock_skew_ms", sa.Integer(), nullable=True))
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
    if op.get_bind().dialect.name == "postgresql":
        for table in _BYPASS_COLUMNS:
            op.execute(_bypass_sql(table))
    # A pass reads changed rows in (sync_version, id) order and stops after a batch: the
    # index in that order lets it, where sync_version alone meant sorting every row past
    # the watermark for each batch.
    for table in _SYNCED:
        op.create_index(op.f(f"ix_{table}_sync_version_id"), table, ["sync_version", "id"])


# Writes that bypass Strongroom on PostgreSQL (psql, another program) still sync: a
# trigger gives them a change version and a checksum computed exactly as
# core.repository.changes.row_checksum does (columns in name order, `name=<typed
# value>` lines, SHA-256), so the stamper sees them and peers accept them. They are
# audited as bypass writes by migration 0002's trigger. The column lists are frozen
# here, as a migration must be; a later migration that adds a column replaces them.
_BYPASS_COLUMNS = {
    "clients": [
        ("address_enc", "b"), ("conflict_resolution_strategy", "s"), ("created_at", "t"),
        ("data_sensitivity", "s"), ("date_of_birth_enc", "b"), ("deleted_at", "t"), ("email_bidx", "b"),
        ("email_enc", "b"), ("emergency_contact_enc", "b"), ("first_name_enc", "b"), ("id", "s"),
        ("intake_date", "d"), ("key_id", "s"), ("last_name_bidx", "b"), ("last_name_enc", "b"),
        ("medical_history_enc", "b"), ("notes_enc", "b"), ("phone_enc", "b"), ("practice_id", "s"),
        ("practitioner_id", "s"), ("retention_expiry_date", "d"), ("ssn_enc", "b"), ("ssn_last4_bidx", "b"),
        ("status", "s"), ("updated_at", "t"),
    ],
    "therapy_sessions": [
        ("client_id", "s"), ("created_at", "t"), ("deleted_at", "t"), ("duration_minutes", "s"), ("id", "s"),
        ("key_id", "s"), ("notes_enc", "b"), ("payment_status", "s"), ("practice_id", "s"),
        ("practitioner_id", "s"), ("price_cents", "s"), ("session_type", "s"), ("starts_at", "t"),
        ("status", "s"), ("updated_at", "t"),
    ],
}
_CANON = {
    "b": "'b:' || encode(NEW.{c}, 'hex')",
    "t": "'t:' || to_char(NEW.{c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'",
    "d": "'s:' || to_char(NEW.{c}, 'YYYY-MM-DD')",
    "s": "'s:' || (NEW.{c})::text",
}


def _bypass_sql(table: str) -> str:
    lines = " || ".join(f"'{c}=' || coalesce({_CANON[kind].format(c=c)}, '~') || E'\\n'"
                        for c, kind in _BYPASS_COLUMNS[table])
    return f"""
CREATE FUNCTION strongroom_sync_bypass_{table}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('strongroom.app', true) = 'on' OR current_setting('strongroom.restoring', true) = 'on' THEN
    RETURN NEW;
  END IF;
  PERFORM pg_advisory_xact_lock_shared({CHANGE_LOCK_KEY});
  NEW.sync_version := nextval('strongroom_change_seq');
  NEW.data_checksum := encode(sha256(convert_to({lines}, 'UTF8')), 'hex');
  RETURN NEW;
END
$$;
CREATE TRIGGER {table}_sync_bypass BEFORE INSERT OR UPDATE ON {table}
  FOR EACH ROW EXECUTE FUNCTION strongroom_sync_bypass_{table}();
"""


_SYNCED = ("practices", "clients", "therapy_sessions")


def downgrade() -> None:
    for table in _SYNCED:
        op.drop_index(op.f(f"ix_{table}_sync_version_id"), table_name=table)
    if op.get_bind().dialect.name == "postgresql":
        for table in _BYPASS_COLUMNS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_sync_bypass ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS strongroom_sync_bypass_{table}()")
    op.drop_table("sync_leases")
    with op.batch_alter_table("sync_state") as batch:
        batch.drop_column("after_id")
    with op.batch_alter_table("sync_peers") as batch:
        for name in ("clock_skew_ms", "next_attempt_at", "last_attempt_at", "last_error", "failures",
                     "site_id"):
            batch.drop_column(name)
    op.drop_index(op.f("ix_sync_quarantine_status"), table_name="sync_quarantine")
    op.drop_table("sync_quarantine")
    op.drop_table("sync_rows")
    op.drop_table("sync_site")
