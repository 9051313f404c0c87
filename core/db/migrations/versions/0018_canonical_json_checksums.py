"""Row checksums PostgreSQL can reproduce for every synced table, and rows re-sealed where
an earlier revision changed what a checksum covers.

1. JSON columns (`practices.settings`, `staff.specializations`, `staff.working_hours`)
   were checksummed as Python's repr of the document, which depends on the order the
   engine returns keys in (jsonb sorts them by length, SQLite keeps the writer's) and
   which SQL cannot write. They are now checksummed as canonical JSON
   (core.repository.changes.canonical_json: keys in code-point order, no spaces, plain
   decimal numbers), and `strongroom_canonical_json(jsonb)` writes exactly that in
   PL/pgSQL. With it:
2. writes that bypass Strongroom on PostgreSQL (psql, another program) to `practices`,
   `staff` and `services` get a change version and checksum, as clients' and sessions'
   have since migration 0009, so they sync instead of showing as damaged rows; and the
   integrity check hashes those tables in the database, as it does the others.
3. Rows whose stored checksum was right under the rules it was written by are re-sealed
   under the current ones: JSON rows sealed with the repr form, and sessions and
   practices sealed before migration 0016 added columns (it did not re-seal them, so
   every older row failed the integrity check after that upgrade). A row whose checksum
   matches none of the forms it could rightly have is left as it is: it was damaged or
   edited outside Strongroom before this upgrade, and the integrity check must still say
   so. Re-sealing changes no content, so no change version moves (`data_checksum` is
   each site's own; core.sync.tables.LOCAL_COLUMNS).

The frozen column lists of the triggers live here, as a migration's must; the checksum
itself is core.repository.changes.row_checksum as of this revision.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from strongroom.core.db.pg import CHANGE_LOCK_KEY
from strongroom.core.db.types import UTCDateTime
from strongroom.core.repository.changes import row_checksum

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_CANONICAL_JSON = """
CREATE OR REPLACE FUNCTION strongroom_canonical_json(doc jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  kind text := jsonb_typeof(doc);
BEGIN
  IF kind = 'object' THEN
    RETURN '{' || coalesce((SELECT string_agg(to_jsonb(key)::text || ':' || strongroom_canonical_json(value),
                                              ',' ORDER BY key COLLATE "C")
                              FROM jsonb_each(doc)), '') || '}';
  ELSIF kind = 'array' THEN
    RETURN '[' || coalesce((SELECT string_agg(strongroom_canonical_json(value), ',' ORDER BY at)
                              FROM jsonb_array_elements(doc) WITH ORDINALITY AS e(value, at)), '') || ']';
  ELSIF kind = 'number' THEN
    RETURN trim_scale(doc::text::numeric)::text;
  END IF;
  RETURN doc::text;   -- a string (quoted and escaped as JSON), true, false or null
END
$$;
"""

# How each kind of column is written into a checksum line (core.repository.changes).
_CANON = {
    "b": "'b:' || encode(NEW.{c}, 'hex')",
    "t": "'t:' || to_char(NEW.{c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'",
    "d": "'s:' || to_char(NEW.{c}, 'YYYY-MM-DD')",
    "s": "'s:' || (NEW.{c})::text",
    "u": "'s:' || (NEW.{c})::text",
    "n": "'s:' || (NEW.{c})::text",
    "i": "'i:' || (NEW.{c})::int::text",
    "j": "'j:' || strongroom_canonical_json(NEW.{c})",
}
# The checksummed columns of the tables this revision touches, in name order, with their
# kind: b bytes, t timestamp, d date, s text, u uuid, n integer, i boolean, j JSON.
_COLUMNS = {
    "practices": [
        ("address", "s"), ("created_at", "t"), ("deleted_at", "t"), ("email", "s"), ("id", "u"),
        ("license_number_enc", "b"), ("name", "s"), ("phone", "s"), ("settings", "j"), ("tax_id_enc", "b"),
        ("timezone", "s"), ("updated_at", "t"),
    ],
    "staff": [
        ("active", "i"), ("created_at", "t"), ("deleted_at", "t"), ("email", "s"), ("first_name", "s"),
        ("hourly_rate_cents", "n"), ("id", "u"), ("last_name", "s"), ("phone", "s"), ("practice_id", "u"),
        ("role", "s"), ("specializations", "j"), ("updated_at", "t"), ("user_id", "u"), ("working_hours", "j"),
    ],
    "services": [
        ("active", "i"), ("category", "s"), ("created_at", "t"), ("deleted_at", "t"), ("description", "s"),
        ("duration_minutes", "n"), ("id", "u"), ("name", "s"), ("practice_id", "u"), ("price_cents", "n"),
        ("updated_at", "t"),
    ],
    "therapy_sessions": [
        ("billing_codes_enc", "b"), ("client_id", "u"), ("consent_verified", "i"), ("created_at", "t"),
        ("deleted_at", "t"), ("duration_minutes", "n"), ("id", "u"), ("insurance_info_enc", "b"), ("key_id", "u"),
        ("notes_enc", "b"), ("payment_status", "s"), ("practice_id", "u"), ("practitioner_id", "u"),
        ("price_cents", "n"), ("reminder_sent", "i"), ("service_id", "u"), ("session_number", "n"),
        ("session_type", "s"), ("soap_summary_enc", "b"), ("staff_id", "u"), ("starts_at", "t"), ("status", "s"),
        ("updated_at", "t"),
    ],
}
_BYPASSED = ("practices", "staff", "services")   # sessions' trigger is migration 0016's


def _bypass_sql(table: str) -> str:
    lines = " || ".join(f"'{c}=' || coalesce({_CANON[kind].format(c=c)}, '~') || E'\\n'"
                        for c, kind in _COLUMNS[table])
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


# --- re-sealing ------------------------------------------------------------------------

# Columns migration 0016 added: rows sealed before it were checksummed without them.
_ADDED_IN_0016 = {
    "practices": ("address", "phone", "email", "tax_id_enc", "license_number_enc"),
    "therapy_sessions": ("service_id", "staff_id", "reminder_sent", "session_number", "soap_summary_enc",
                         "billing_codes_enc", "insurance_info_enc", "consent_verified"),
}
_JSON_COLUMNS = {"practices": ("settings",), "staff": ("specializations", "working_hours")}
_RESEALED = ("practices", "therapy_sessions", "staff")
_BATCH = 2000


def _sorted_deep(value):
    if isinstance(value, dict):
        return {k: _sorted_deep(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_deep(v) for v in value]
    return value


def _repr_forms(row: dict, table: str) -> list[dict]:
    """The row as the repr-form checksum saw it: each JSON document as the text
    `str(document)` (what `"s:" + str(v)` wrote), in the key order read back and sorted
    (the order the writer had is not stored; Strongroom's writers sort)."""
    names = [n for n in _JSON_COLUMNS.get(table, ()) if row.get(n) is not None]
    if not names:
        return []
    forms = []
    for shape in (lambda v: v, _sorted_deep):
        forms.append({**row, **{n: str(shape(row[n])) for n in names}})
    return forms


def _legacy_checksums(row: dict, table: str) -> set[str]:
    """Every checksum a correctly sealed row of `table` may carry from before this
    revision: the repr form of its JSON, and the form without migration 0016's columns
    when they still hold what 0016 gave every older row."""
    rows = [row, *_repr_forms(row, table)]
    added = _ADDED_IN_0016.get(table, ())
    if added and all(row.get(n) in (None, False) for n in added):
        rows += [{k: v for k, v in r.items() if k not in added} for r in rows]
    return {row_checksum(r) for r in rows}


def _typed(kind: str):
    return {"b": sa.LargeBinary(), "t": UTCDateTime(timezone=True), "d": sa.Date(), "s": sa.String(),
            "u": sa.Uuid(), "n": sa.BigInteger(), "i": sa.Boolean(),
            "j": sa.JSON().with_variant(postgresql.JSONB(), "postgresql")}[kind]


def _rows(bind: sa.Connection, table: str) -> Iterator[list[dict]]:
    """The table's checksummed columns, its checksum, a batch at a time in id order
    (keyset paging: memory stays flat whatever the table's size)."""
    columns = [sa.column(name, _typed(kind)) for name, kind in _COLUMNS[table]]
    typed = sa.table(table, *columns, sa.column("data_checksum", sa.String()))
    after = None
    while True:
        query = sa.select(typed).order_by(typed.c.id).limit(_BATCH)
        if after is not None:
            query = query.where(typed.c.id > after)
        rows = [dict(r) for r in bind.execute(query).mappings()]
        if not rows:
            return
        yield rows
        after = rows[-1]["id"]


def _reseal(bind: sa.Connection, seal: Callable[[dict], str], accepted: Callable[[dict, str], set[str]]) -> None:
    for table in _RESEALED:
        for rows in _rows(bind, table):
            changes = []
            for row in rows:
                stored = row.pop("data_checksum")
                new = seal(row)
                if stored and stored != new and stored in accepted(row, table):
                    changes.append({"row_id": row["id"], "checksum": new})
            if changes:
                target = sa.table(table, sa.column("id", sa.Uuid()), sa.column("data_checksum", sa.String()))
                bind.execute(target.update().where(target.c.id == sa.bindparam("row_id"))
                             .values(data_checksum=sa.bindparam("checksum")), changes)


def _as_application(bind: sa.Connection) -> None:
    """Re-sealing is the application's own write: no bypass audit, no change version, no
    sync base (core/db/sync_bases.py), and every practice's rows in sight."""
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("SELECT set_config('strongroom.app', 'on', true),"
                             " set_config('strongroom.scope', 'system', true)"))
    bind.execute(sa.text("INSERT INTO sync_applying (holder) VALUES ('migration 0018')"))


def _done_as_application(bind: sa.Connection) -> None:
    bind.execute(sa.text("DELETE FROM sync_applying WHERE holder = 'migration 0018'"))
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("SELECT set_config('strongroom.app', '', true), set_config('strongroom.scope', '', true)"))


def upgrade() -> None:
    bind = op.get_bind()
    _as_application(bind)
    _reseal(bind, row_checksum, _legacy_checksums)
    _done_as_application(bind)
    if bind.dialect.name == "postgresql":
        op.execute(_CANONICAL_JSON)
        for table in _BYPASSED:
            op.execute(_bypass_sql(table))


def _repr_checksum(row: dict) -> str:
    """The checksum as revision 0017 wrote it (JSON in repr form, keys as read)."""
    table = "staff" if "working_hours" in row else "practices" if "settings" in row else ""
    forms = _repr_forms(row, table)
    return row_checksum(forms[0] if forms else row)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in reversed(_BYPASSED):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_sync_bypass ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS strongroom_sync_bypass_{table}()")
        op.execute("DROP FUNCTION IF EXISTS strongroom_canonical_json(jsonb)")
    # Rows sealed in canonical form go back to the repr form revision 0017 checks.
    _as_application(bind)
    _reseal(bind, _repr_checksum, lambda row, table: {row_checksum(row)})
    _done_as_application(bind)
