"""Guards the models cannot express: append-only audit log, change counter, and on
PostgreSQL row-level security per practice and audit triggers for writes that bypass
the application.

The audit record hash is computed in SQL here with the same canonical encoding as
strongroom.core.audit.record_hash (each field as `<length>:<text>`, NULL as `~`), so a
row written by a trigger verifies exactly like one written by the application.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op

from strongroom.core.db.models import AUDITED_TABLES, PRACTICE_TABLES
from strongroom.core.db.pg import AUDIT_LOCK_KEY

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SQLITE_GUARDS = [
    "CREATE TRIGGER audit_logs_append_only_update BEFORE UPDATE ON audit_logs "
    "BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END",
    "CREATE TRIGGER audit_logs_append_only_delete BEFORE DELETE ON audit_logs "
    "BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END",
    "INSERT INTO change_counter (name, value) VALUES ('sync_version', 0)",
]

_PG_FUNCTIONS = f"""
CREATE SEQUENCE strongroom_change_seq;

CREATE FUNCTION strongroom_audit_field(v text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN v IS NULL THEN '~' ELSE length(v)::text || ':' || v END
$$;

CREATE FUNCTION strongroom_audit_append(p_actor text, p_action text, p_table text,
    p_record text, p_outcome text, p_details text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
  v_at timestamptz := date_trunc('microseconds', clock_timestamp());
  v_prev text;
  v_ip text := host(inet_client_addr());
  v_hash text;
BEGIN
  PERFORM pg_advisory_xact_lock({AUDIT_LOCK_KEY});
  SELECT hash INTO v_prev FROM audit_logs ORDER BY id DESC LIMIT 1;
  v_prev := coalesce(v_prev, repeat('0', 64));
  v_id := nextval(pg_get_serial_sequence('audit_logs', 'id'));
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

-- Writes that do not come through Strongroom (psql, another program) are audited here.
-- Only the names of changed columns are recorded: values may be PHI.
CREATE FUNCTION strongroom_audit_bypass() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_row text;
  v_cols text := '[]';
BEGIN
  IF current_setting('strongroom.app', true) = 'on' THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'DELETE' THEN
    v_row := to_jsonb(OLD) ->> 'id';
  ELSE
    v_row := to_jsonb(NEW) ->> 'id';
  END IF;
  IF TG_OP = 'UPDATE' THEN
    SELECT coalesce(json_agg(n.key ORDER BY n.key)::text, '[]') INTO v_cols
      FROM jsonb_each(to_jsonb(NEW)) n JOIN jsonb_each(to_jsonb(OLD)) o USING (key)
     WHERE n.value IS DISTINCT FROM o.value;
  END IF;
  PERFORM strongroom_audit_append('db:' || session_user,
      CASE TG_OP WHEN 'INSERT' THEN 'CREATE' WHEN 'UPDATE' THEN 'UPDATE' ELSE 'DELETE' END,
      TG_TABLE_NAME, v_row, 'bypass',
      json_build_object('source', 'db_trigger', 'columns', v_cols::json)::text);
  RETURN NULL;
END
$$;

CREATE FUNCTION strongroom_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_logs is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
  FOR EACH ROW EXECUTE FUNCTION strongroom_audit_append_only();
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
  FOR EACH STATEMENT EXECUTE FUNCTION strongroom_audit_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_logs FROM PUBLIC;
"""

_RLS_POLICY = """
ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {t} FORCE ROW LEVEL SECURITY;
CREATE POLICY {t}_practice_isolation ON {t}
  USING (current_setting('strongroom.scope', true) = 'system'
         OR practice_id::text = current_setting('strongroom.practice_id', true))
  WITH CHECK (current_setting('strongroom.scope', true) = 'system'
         OR practice_id::text = current_setting('strongroom.practice_id', true));
"""

_AUDIT_TRIGGER = """
CREATE TRIGGER {t}_audit_bypass AFTER INSERT OR UPDATE OR DELETE ON {t}
  FOR EACH ROW EXECUTE FUNCTION strongroom_audit_bypass();
"""


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE_GUARDS:
            op.execute(statement)
        return
    op.execute(_PG_FUNCTIONS)
    for table in PRACTICE_TABLES:
        op.execute(_RLS_POLICY.format(t=table))
    for table in AUDITED_TABLES:
        op.execute(_AUDIT_TRIGGER.format(t=table))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER audit_logs_append_only_update")
        op.execute("DROP TRIGGER audit_logs_append_only_delete")
        op.execute("DELETE FROM change_counter WHERE name = 'sync_version'")
        return
    for table in AUDITED_TABLES:
        op.execute(f"DROP TRIGGER {table}_audit_bypass ON {table}")
    for table in PRACTICE_TABLES:
        op.execute(f"DROP POLICY {table}_practice_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP TRIGGER audit_logs_append_only ON audit_logs")
    op.execute("DROP TRIGGER audit_logs_no_truncate ON audit_logs")
    op.execute("DROP FUNCTION strongroom_audit_append_only()")
    op.execute("DROP FUNCTION strongroom_audit_bypass()")
    op.execute("DROP FUNCTION strongroom_audit_append(text, text, text, text, text, text)")
    op.execute("DROP FUNCTION strongroom_audit_field(text)")
    op.execute("DROP SEQUENCE strongroom_change_seq")
