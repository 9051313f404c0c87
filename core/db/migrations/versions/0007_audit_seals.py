"""Audit seals: `audit_logs.mac`, and a trigger function that survives a planted id.

`mac` is the HMAC-SHA256 of a row's hash under a key the database does not hold
(strongroom.core.audit): nullable, because rows written before this migration, and rows
the PostgreSQL trigger writes for changes made outside Strongroom, have none. A plain
ADD COLUMN keeps SQLite's append-only triggers (a batch rebuild would drop them).

strongroom_audit_append took `nextval` as the new id; a row inserted with an explicit id
ahead of the sequence made every later append (and so `audit verify`'s own entry) fail
with a duplicate key. It now continues after the newest row, as core.audit.append does.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

from strongroom.core.db.pg import AUDIT_LOCK_KEY

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_APPEND = """
CREATE OR REPLACE FUNCTION strongroom_audit_append(p_actor text, p_action text, p_table text,
    p_record text, p_outcome text, p_details text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
  v_last bigint;
  v_at timestamptz := date_trunc('microseconds', clock_timestamp());
  v_prev text;
  v_ip text := host(inet_client_addr());
  v_hash text;
BEGIN
  PERFORM pg_advisory_xact_lock(%(lock)s);
  SELECT id, hash INTO v_last, v_prev FROM audit_logs ORDER BY id DESC LIMIT 1;
  v_prev := coalesce(v_prev, repeat('0', 64));
  v_id := nextval(pg_get_serial_sequence('audit_logs', 'id'));
  IF v_last IS NOT NULL AND v_id <= v_last THEN
    v_id := setval(pg_get_serial_sequence('audit_logs', 'id'), v_last + 1);
  END IF;
  v_hash := encode(sha256(convert_to(
      strongroom_audit_field(v_id::text)
   || strongroom_audit_field(((extract(epoch FROM v_at) * 1000000)::bigint)::text)
   || strongroom_audit_field(p_actor)
   || strongroom_audit_field(NULL)
   || strongroom_audit_field(p_action)
   || strongroom_audit_field(p_table)
   || strongroom_audit_field(p_record)
   || strongroom_audit_field(v_ip)
   || strongroom_audit_field(NULL)
   || strongroom_audit_field(p_outcome)
   || strongroom_audit_field(p_details)
   || strongroom_audit_field(v_prev), 'UTF8')), 'hex');
  INSERT INTO audit_logs (id, occurred_at, actor, session_id, action, table_name, record_id,
      ip_address, user_agent, outcome, details, prev_hash, hash)
  VALUES (v_id, v_at, p_actor, NULL, p_action, p_table, p_record, v_ip, NULL, p_outcome,
      p_details, v_prev, v_hash);
  RETURN v_id;
END
$$;
"""


def upgrade() -> None:
    op.add_column("audit_logs", sa.Column("mac", sa.String(length=64), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_APPEND % {"lock": AUDIT_LOCK_KEY})


def downgrade() -> None:
    op.drop_column("audit_logs", "mac")
