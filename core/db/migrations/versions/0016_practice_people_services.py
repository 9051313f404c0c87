"""The practice's people and services (issue 20 part 1).

- `practices` gains its contact details (address, phone, email: not secret) and its tax
  id and licence number, sealed with the system key (`*_enc`, like TOTP seeds).
- `staff`: the people who work at the practice, with or without a user account (role,
  specializations, working hours as a JSON document, hourly rate in cents, active).
- `services`: the practice's catalogue (name, category, duration, price in cents, active).
- `therapy_sessions` become the source's appointments and gain the first source's
  clinical fields: the service and staff member booked, reminder sent, session number,
  SOAP summary, billing codes and insurance info (PHI sealed with the client's key, like
  notes) and consent verified.

Staff and services are practice-scoped synced rows like clients: on PostgreSQL they get
row-level security and the bypass-audit trigger of migration 0002. The sync-base shadow
of `therapy_sessions` mirrors its columns, so it is rebuilt (core/db/sync_bases.py), and
the PostgreSQL trigger that versions bypass writes to sessions (migration 0009) is
replaced with the new column list; the frozen lists live here, as a migration's must.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import strongroom.core.db.types
from strongroom.core.db import sync_bases
from strongroom.core.db.pg import CHANGE_LOCK_KEY

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_WHEN = strongroom.core.db.types.UTCDateTime(timezone=True)
_ROLE = sa.Enum("ADMIN", "MANAGER", "PRACTITIONER", "STAFF", "admin", "operator", "auditor",
                name="role", native_enum=False, length=24)
_NEW_TABLES = ("staff", "services")
_SESSION_COLUMNS = ("service_id", "staff_id", "reminder_sent", "session_number", "soap_summary_enc",
                    "billing_codes_enc", "insurance_info_enc", "consent_verified")
_PRACTICE_COLUMNS = ("address", "phone", "email", "tax_id_enc", "license_number_enc")


def _syncable(table: str) -> list:
    return [
        sa.Column("practice_id", sa.Uuid(), sa.ForeignKey("practices.id", name=f"fk_{table}_practice_id_practices"),
                  nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.Column("sync_version", sa.BigInteger(), nullable=False),
        sa.Column("data_checksum", sa.String(length=64), nullable=True),
        sa.Column("deleted_at", _WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
    ]


def _indexes(table: str) -> None:
    op.create_index(f"ix_{table}_practice_id", table, ["practice_id"])
    op.create_index(f"ix_{table}_sync_version", table, ["sync_version"])
    op.create_index(f"ix_{table}_sync_version_id", table, ["sync_version", "id"])


# Bypass writes to sessions get a change version and checksum exactly as
# core.repository.changes.row_checksum computes them (migration 0009 says how).
_SESSION_BYPASS_BEFORE = [
    ("client_id", "s"), ("created_at", "t"), ("deleted_at", "t"), ("duration_minutes", "s"), ("id", "s"),
    ("key_id", "s"), ("notes_enc", "b"), ("payment_status", "s"), ("practice_id", "s"),
    ("practitioner_id", "s"), ("price_cents", "s"), ("session_type", "s"), ("starts_at", "t"),
    ("status", "s"), ("updated_at", "t"),
]
_SESSION_BYPASS_AFTER = sorted(_SESSION_BYPASS_BEFORE + [
    ("billing_codes_enc", "b"), ("consent_verified", "i"), ("insurance_info_enc", "b"), ("reminder_sent", "i"),
    ("service_id", "s"), ("session_number", "s"), ("soap_summary_enc", "b"), ("staff_id", "s"),
])
_CANON = {
    "b": "'b:' || encode(NEW.{c}, 'hex')",
    "t": "'t:' || to_char(NEW.{c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'",
    "s": "'s:' || (NEW.{c})::text",
    "i": "'i:' || (NEW.{c})::int::text",
}


def _session_bypass(columns: list[tuple[str, str]]) -> str:
    lines = " || ".join(f"'{c}=' || coalesce({_CANON[kind].format(c=c)}, '~') || E'\\n'" for c, kind in columns)
    return f"""
CREATE OR REPLACE FUNCTION strongroom_sync_bypass_therapy_sessions() RETURNS trigger
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
"""


_RLS_POLICY = """
ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {t} FORCE ROW LEVEL SECURITY;
CREATE POLICY {t}_practice_isolation ON {t}
  USING (current_setting('strongroom.scope', true) = 'system'
         OR practice_id::text = current_setting('strongroom.practice_id', true))
  WITH CHECK (current_setting('strongroom.scope', true) = 'system'
         OR practice_id::text = current_setting('strongroom.practice_id', true));
CREATE TRIGGER {t}_audit_bypass AFTER INSERT OR UPDATE OR DELETE ON {t}
  FOR EACH ROW EXECUTE FUNCTION strongroom_audit_bypass();
"""


def upgrade() -> None:
    with op.batch_alter_table("practices") as batch:
        batch.add_column(sa.Column("address", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("phone", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("email", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("tax_id_enc", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("license_number_enc", sa.LargeBinary(), nullable=True))
    op.create_table(
        "staff",
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("role", _ROLE, nullable=False),
        sa.Column("specializations", _JSON, nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("working_hours", _JSON, nullable=False),
        sa.Column("hourly_rate_cents", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        *_syncable("staff"),
        sa.UniqueConstraint("user_id", name="uq_staff_user_id"),
    )
    _indexes("staff")
    op.create_table(
        "services",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        *_syncable("services"),
    )
    _indexes("services")
    with op.batch_alter_table("therapy_sessions") as batch:
        batch.add_column(sa.Column("service_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("staff_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("reminder_sent", sa.Boolean(), nullable=False, server_default=sa.text("false")))
        batch.add_column(sa.Column("session_number", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("soap_summary_enc", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("billing_codes_enc", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("insurance_info_enc", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("consent_verified", sa.Boolean(), nullable=False,
                                   server_default=sa.text("false")))
        batch.create_foreign_key("fk_therapy_sessions_service_id_services", "services", ["service_id"], ["id"])
        batch.create_foreign_key("fk_therapy_sessions_staff_id_staff", "staff", ["staff_id"], ["id"])
    bind = op.get_bind()
    sync_bases.install(bind)
    if bind.dialect.name == "postgresql":
        for table in _NEW_TABLES:
            op.execute(_RLS_POLICY.format(t=table))
        op.execute(_session_bypass(_SESSION_BYPASS_AFTER))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(_session_bypass(_SESSION_BYPASS_BEFORE))
    with op.batch_alter_table("therapy_sessions") as batch:
        batch.drop_constraint("fk_therapy_sessions_staff_id_staff", type_="foreignkey")
        batch.drop_constraint("fk_therapy_sessions_service_id_services", type_="foreignkey")
        for name in reversed(_SESSION_COLUMNS):
            batch.drop_column(name)
    sync_bases.install(bind)
    for table in reversed(_NEW_TABLES):
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER {table}_audit_bypass ON {table}")
        op.drop_index(f"ix_{table}_sync_version_id", table_name=table)
        op.drop_index(f"ix_{table}_sync_version", table_name=table)
        op.drop_index(f"ix_{table}_practice_id", table_name=table)
        op.drop_table(table)
    with op.batch_alter_table("practices") as batch:
        for name in reversed(_PRACTICE_COLUMNS):
            batch.drop_column(name)
