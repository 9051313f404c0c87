"""The audit log is a hash chain: any change, insertion or removal is found, and the
first broken entry is named."""
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from strongroom.core import audit
from strongroom.core.db.engine import transaction
from tests.conftest import lift_audit_guards


def _append(engine, n, **kw):
    with transaction(engine) as conn:
        for i in range(n):
            audit.append(conn, actor="user:alice", action="READ", table_name="clients",
                         record_id=f"row-{i}", details={"i": i}, **kw)


def _tamper(engine, sql):
    """Change audit_logs the way a database administrator could: triggers disabled."""
    with engine.begin() as conn:
        lift_audit_guards(conn)
        conn.exec_driver_sql(sql)


def test_appended_entries_verify(engine):
    _append(engine, 25)
    result = audit.verify(engine, batch=7)
    assert result.ok and result.checked == 25 and result.head_id == 25


def test_empty_chain_verifies(engine):
    result = audit.verify(engine)
    assert result.ok and result.checked == 0 and result.head_hash == audit.GENESIS


def test_update_is_refused_by_the_database(engine):
    _append(engine, 2)
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_logs SET actor = 'mallory' WHERE id = 1"))
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_logs WHERE id = 1"))
    assert audit.verify(engine).ok


def test_altered_entry_is_named_by_verify(engine):
    _append(engine, 10)
    _tamper(engine, "UPDATE audit_logs SET actor = 'mallory' WHERE id = 4")
    result = audit.verify(engine, batch=3)
    assert not result.ok
    assert result.broken_id == 4 and result.checked == 3
    assert "altered" in result.reason


def test_removed_entry_breaks_the_next_link(engine):
    _append(engine, 10)
    _tamper(engine, "DELETE FROM audit_logs WHERE id = 6")
    result = audit.verify(engine)
    assert not result.ok and result.broken_id == 7
    assert "prev_hash" in result.reason


def test_rewritten_tail_with_recomputed_hash_still_breaks_the_link(engine):
    _append(engine, 5)
    with engine.connect() as conn:
        table = audit._log
        row = dict(conn.execute(table.select().where(table.c.id == 3)).mappings().one())
    row["actor"] = "mallory"
    forged = audit.record_hash(row)
    _tamper(engine, f"UPDATE audit_logs SET actor = 'mallory', hash = '{forged}' WHERE id = 3")
    result = audit.verify(engine)
    assert not result.ok and result.broken_id == 4


def test_unknown_action_is_refused(engine):
    with pytest.raises(ValueError, match="unknown audit action"):
        with transaction(engine) as conn:
            audit.append(conn, actor="x", action="TELEPORT")


def test_tail_pages_backwards_and_filters(engine):
    _append(engine, 12)
    with transaction(engine) as conn:
        audit.append(conn, actor="user:bob", action="EXPORT", details={"rows": 3})
    with engine.connect() as conn:
        newest = audit.tail(conn, limit=5)
        older = audit.tail(conn, limit=5, before_id=newest[-1].id)
        bobs = audit.tail(conn, actor="user:bob")
        exports = audit.tail(conn, action="EXPORT")
    assert [e.id for e in newest] == [13, 12, 11, 10, 9]
    assert [e.id for e in older] == [8, 7, 6, 5, 4]
    assert [e.action for e in bobs] == ["EXPORT"] and exports[0].details == {"rows": 3}


def test_rolled_back_transaction_leaves_no_entry(engine):
    with pytest.raises(RuntimeError):
        with transaction(engine) as conn:
            audit.append(conn, actor="x", action="READ")
            raise RuntimeError("job failed")
    assert audit.verify(engine).checked == 0


def test_writes_bypassing_the_application_are_audited_and_chain_verifies(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("database triggers for out-of-band writes are PostgreSQL's")
    _append(engine, 2)
    with engine.begin() as conn:  # a plain connection: no strongroom.app marker
        conn.execute(text("INSERT INTO practices (id, name, timezone, settings, created_at, "
                          "updated_at, sync_version) VALUES (gen_random_uuid(), 'Side door', "
                          "'UTC', '{}', now(), now(), 0)"))
        conn.execute(text("UPDATE practices SET name = 'Side door 2'"))
    _append(engine, 1)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT action, table_name, outcome, details FROM audit_logs "
                                 "WHERE outcome = 'bypass' ORDER BY id")).all()
    assert [(r.action, r.table_name) for r in rows] == [("CREATE", "practices"), ("UPDATE", "practices")]
    assert '"name"' in rows[1].details and "Side door" not in rows[1].details
    assert audit.verify(engine).ok and audit.verify(engine).checked == 5


# --- the chain rule itself, on generated chains -------------------------------------

def _chain(n):
    rows, prev = [], audit.GENESIS
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(1, n + 1):
        row = {"id": i, "occurred_at": start + timedelta(seconds=i), "actor": f"user:{i % 3}",
               "session_id": None, "action": "READ", "table_name": "clients",
               "record_id": str(i), "ip_address": None, "user_agent": None,
               "outcome": "success", "details": audit.canonical_json({"n": i}), "prev_hash": prev}
        row["hash"] = audit.record_hash(row)
        prev = row["hash"]
        rows.append(row)
    return rows


@hsettings(max_examples=200, deadline=None)
@given(n=st.integers(2, 30), data=st.data())
def test_any_single_field_change_is_detected_at_that_row(n, data):
    rows = _chain(n)
    victim = data.draw(st.integers(0, n - 1))
    field = data.draw(st.sampled_from(["actor", "action", "table_name", "record_id", "outcome", "details", "session_id"]))
    replacement = data.draw(st.text(min_size=0, max_size=20))
    if rows[victim][field] == replacement:
        replacement += "x"
    rows[victim] = {**rows[victim], field: replacement}
    checked, _, broken, _ = audit.check_rows(rows)
    assert broken == rows[victim]["id"] and checked == victim


@hsettings(max_examples=200, deadline=None)
@given(n=st.integers(3, 30), data=st.data())
def test_any_removed_or_swapped_row_is_detected(n, data):
    rows = _chain(n)
    i = data.draw(st.integers(0, n - 2))
    if data.draw(st.booleans()):
        del rows[i]
    else:
        rows[i], rows[i + 1] = rows[i + 1], rows[i]
    _, _, broken, _ = audit.check_rows(rows)
    assert broken is not None


@given(st.text(), st.text())
def test_field_encoding_is_unambiguous(a, b):
    # "ab" + "c" and "a" + "bc" must never hash alike: each field is length-prefixed.
    row = _chain(1)[0]
    left = audit.record_hash({**row, "actor": a + b, "action": ""})
    right = audit.record_hash({**row, "actor": a, "action": b + ""})
    if b:
        assert left != right


# --- signed checkpoints ---------------------------------------------------------------

def test_checkpoint_verifies_while_history_is_untouched(ctx):
    _append(ctx.engine, 4)
    with transaction(ctx.engine) as conn:
        cp = audit.checkpoint(conn, ctx.keyring)
    _append(ctx.engine, 3)
    assert cp["head_id"] == 4
    assert audit.verify_checkpoint(ctx.engine, cp).ok


def test_rewritten_history_with_recomputed_chain_is_caught_by_the_checkpoint(ctx):
    _append(ctx.engine, 5)
    with transaction(ctx.engine) as conn:
        cp = audit.checkpoint(conn, ctx.keyring)
    # Rewrite entry 2 and recompute every later hash: the chain alone verifies again.
    with ctx.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(audit._log.select().order_by(audit._log.c.id)).mappings()]
    rows[1]["actor"] = "mallory"
    prev = rows[0]["hash"]
    for row in rows[1:]:
        row["prev_hash"] = prev
        row["hash"] = audit.record_hash(row)
        prev = row["hash"]
    for row in rows[1:]:
        _tamper(ctx.engine, f"UPDATE audit_logs SET actor = '{row['actor']}', prev_hash = '{row['prev_hash']}', "
                            f"hash = '{row['hash']}' WHERE id = {row['id']}")
    assert audit.verify(ctx.engine).ok
    result = audit.verify_checkpoint(ctx.engine, cp)
    assert not result.ok and result.broken_id == 5 and "rewritten" in result.reason


def test_altered_checkpoint_fails_its_signature(ctx):
    _append(ctx.engine, 2)
    with transaction(ctx.engine) as conn:
        cp = audit.checkpoint(conn, ctx.keyring)
    from strongroom.core.errors import IntegrityError
    with pytest.raises(IntegrityError, match="signature is invalid"):
        audit.verify_checkpoint(ctx.engine, {**cp, "head_id": 1})
    with pytest.raises(IntegrityError, match="malformed"):
        audit.verify_checkpoint(ctx.engine, {"head_id": 1})


# --- seals: a row nobody without the key can forge ------------------------------------

def _forge(engine, **changes) -> int:
    """Append a row the way someone with write access to the database could: correct
    hash, correct link, written straight into the table."""
    with engine.connect() as conn:
        last = conn.execute(audit._log.select().order_by(audit._log.c.id.desc()).limit(1)).mappings().one()
    row = {"id": last["id"] + 1, "occurred_at": datetime.now(timezone.utc), "actor": "user:alice",
           "session_id": None, "action": "LOGIN", "table_name": None, "record_id": None, "ip_address": None,
           "user_agent": None, "outcome": "success", "details": "{}", "prev_hash": last["hash"], **changes}
    row["hash"] = audit.record_hash(row)
    with engine.begin() as conn:
        conn.execute(audit._log.insert(), [row])
    return row["id"]


def _head(engine) -> int:
    """The newest entry's id (on PostgreSQL the test database's set-up already wrote one
    through the bypass trigger)."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_logs")).scalar()


def test_every_entry_is_sealed_once_the_chain_key_exists(ctx):
    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    before = _head(ctx.engine)
    _append(ctx.engine, 3)
    with ctx.engine.connect() as conn:
        macs = conn.execute(text("SELECT mac FROM audit_logs WHERE id > :b"), {"b": before}).scalars().all()
    assert len(macs) == 3 and all(len(m) == 64 for m in macs)
    result = audit.verify(ctx.engine, keyring=ctx.keyring)
    assert result.ok and result.sealed and result.unsealed_legacy == 0


def test_a_forged_row_with_a_correct_hash_is_caught_by_its_missing_seal(ctx):
    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    _append(ctx.engine, 3)
    forged = _forge(ctx.engine)
    assert audit.verify(ctx.engine).ok            # the plain hash chain alone cannot tell
    result = audit.verify(ctx.engine, keyring=ctx.keyring)
    assert not result.ok and result.broken_id == forged and "not sealed" in result.reason
    assert result.checked == forged - 1


def test_a_forged_row_with_an_invented_seal_is_caught(ctx):
    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    _append(ctx.engine, 2)
    forged = _forge(ctx.engine, mac="ab" * 32)
    result = audit.verify(ctx.engine, keyring=ctx.keyring)
    assert not result.ok and result.broken_id == forged and "seal does not match" in result.reason


def test_entries_from_before_sealing_began_still_verify_and_are_counted(ctx):
    _append(ctx.engine, 4)                        # an upgraded database: no chain key yet
    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    _append(ctx.engine, 2)
    result = audit.verify(ctx.engine, keyring=ctx.keyring)
    assert result.ok and result.checked == _head(ctx.engine) and result.unsealed_legacy == 4


def test_a_checkpoint_covers_its_own_entry(ctx):
    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    _append(ctx.engine, 2)
    with transaction(ctx.engine) as conn:
        cp = audit.checkpoint(conn, ctx.keyring, actor="user:alice", reason="test")
    with ctx.engine.connect() as conn:
        newest = conn.execute(audit._log.select().order_by(audit._log.c.id.desc()).limit(1)).mappings().one()
    assert cp["head_id"] == newest["id"] and cp["head_hash"] == newest["hash"]
    assert newest["action"] == "INTEGRITY" and '"checkpoint"' in newest["details"]


def test_cutting_the_newest_entries_is_caught_by_the_checkpoint(ctx):
    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    _append(ctx.engine, 6)
    with transaction(ctx.engine) as conn:
        cp = audit.checkpoint(conn, ctx.keyring, actor="user:alice")
    _tamper(ctx.engine, f"DELETE FROM audit_logs WHERE id > {cp['head_id'] - 3}")
    assert audit.verify(ctx.engine, keyring=ctx.keyring).ok     # the shorter chain is intact
    result = audit.verify_checkpoint(ctx.engine, cp, keyring=ctx.keyring)
    assert not result.ok and result.rows_missing_after == 3 and "cut" in result.reason


def test_a_public_key_swapped_in_the_database_cannot_vouch_for_a_forged_checkpoint(ctx):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from strongroom.core.errors import IntegrityError

    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    _append(ctx.engine, 2)
    with transaction(ctx.engine) as conn:
        cp = audit.checkpoint(conn, ctx.keyring)
    mallory = Ed25519PrivateKey.generate()
    forged = {**cp, "public_key": mallory.public_key().public_bytes_raw().hex()}
    forged["signature"] = mallory.sign(audit._checkpoint_message(forged)).hex()
    with ctx.engine.begin() as conn:
        conn.execute(text("UPDATE data_keys SET public_key = :p WHERE purpose = 'audit_signing'"),
                     {"p": mallory.public_key().public_bytes_raw()})
    assert audit.verify_checkpoint(ctx.engine, forged).ok     # the database's word alone
    with pytest.raises(IntegrityError, match="signature is invalid"):
        audit.verify_checkpoint(ctx.engine, forged, keyring=ctx.keyring)


def test_an_id_planted_ahead_of_the_sequence_does_not_stop_the_log(ctx):
    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    _append(ctx.engine, 2)
    forged = _forge(ctx.engine)
    _append(ctx.engine, 1)                  # on PostgreSQL nextval would hand out the planted id
    result = audit.verify(ctx.engine, keyring=ctx.keyring)
    assert not result.ok and result.broken_id == forged
    with ctx.engine.connect() as conn:
        assert conn.execute(text("SELECT max(id) FROM audit_logs")).scalar() == forged + 1


def test_rows_the_database_writes_for_outside_changes_are_listed_not_sealed(ctx):
    if ctx.engine.dialect.name != "postgresql":
        pytest.skip("database triggers for out-of-band writes are PostgreSQL's")
    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    _append(ctx.engine, 1)
    with ctx.engine.begin() as conn:  # a plain connection: no strongroom.app marker
        conn.execute(text("INSERT INTO practices (id, name, timezone, settings, created_at, "
                          "updated_at, sync_version) VALUES (gen_random_uuid(), 'Side door', "
                          "'UTC', '{}', now(), now(), 0)"))
    side_door = _head(ctx.engine)
    _append(ctx.engine, 1)
    result = audit.verify(ctx.engine, keyring=ctx.keyring)
    assert result.ok and side_door in result.database_written


def test_a_process_without_the_key_cannot_append_once_sealing_has_begun(ctx, settings):
    from strongroom.core.db.engine import make_engine

    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    _append(ctx.engine, 1)
    bare = make_engine(settings.database.url)      # no keyring: nothing to seal with
    try:
        before = _head(ctx.engine)
        with pytest.raises(audit.UnsealableEntry, match="cannot be sealed"):
            _append(bare, 1)
        assert _head(ctx.engine) == before
    finally:
        bare.dispose()
    assert audit.verify(ctx.engine, keyring=ctx.keyring).ok
