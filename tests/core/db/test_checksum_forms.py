"""Row checksums of JSON columns: one canonical form, written the same by Python and by
PostgreSQL (migration 0018), and rows sealed under earlier rules re-sealed on upgrade
while damaged ones stay damaged."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update

from strongroom.core.db import migrate
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Practice, Service, Staff, TherapySession
from strongroom.core.db.types import utcnow
from strongroom.core.demo import client_records
from strongroom.core.jobs import integrity
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import services as services_repo
from strongroom.core.repository import staff as staff_repo
from strongroom.core.repository.changes import canonical_json, row_checksum
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import create_practice
from strongroom.core.repository.sessions import insert_sessions

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)
# Integers within 64 bits: the engine's JSON reader (core.db.jsoncodec, orjson) reads
# longer ones as floats, so no writer of Strongroom's can keep more digits than that.
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=16)
_ADDED_IN_0016 = ("service_id", "staff_id", "reminder_sent", "session_number", "soap_summary_enc",
                  "billing_codes_enc", "insurance_info_enc", "consent_verified")
_PRACTICE_ADDED_IN_0016 = ("address", "phone", "email", "tax_id_enc", "license_number_enc")


def _quiet(*_):
    pass


def _postgresql_only(engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's own rendering of the checksum")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=_JSON)
def test_postgresql_writes_every_json_document_exactly_as_python_does(engine, document):
    _postgresql_only(engine)
    with engine.connect() as conn:
        in_sql, read_back = conn.execute(text("SELECT strongroom_canonical_json(CAST(:d AS jsonb)), CAST(:d AS jsonb)"),
                                         {"d": json.dumps(document)}).one()
    assert in_sql == canonical_json(read_back) == canonical_json(document)


def _people(ctx) -> dict:
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "P")
        conn.execute(update(Practice.__table__).where(Practice.__table__.c.id == practice).values(
            settings={"encryption_level": "standard", "tz": "UTC", "n": [1, 2.5]}))
        staff = staff_repo.create_staff(conn, SYSTEM, practice, {
            "first_name": "Noor", "last_name": "Vale", "role": "PRACTITIONER", "specializations": ["CBT", "EMDR"],
            "working_hours": {"wed": ["10:00-16:00"], "mon": ["09:00-12:00", "13:00-17:00"]}})
        service = services_repo.create_service(conn, SYSTEM, practice, {
            "name": "Intake", "category": "assessment", "duration_minutes": 80, "price_cents": 18000})
    return {"practice": practice, "staff": staff, "service": service}


def _reseal_practice(conn, practice) -> None:
    """The practice row's checksum as the application writes it (the test changed its
    settings directly)."""
    row = dict(conn.execute(select(Practice.__table__).where(Practice.__table__.c.id == practice)).mappings().one())
    conn.execute(update(Practice.__table__).where(Practice.__table__.c.id == practice)
                 .values(data_checksum=row_checksum(row)))


def test_the_integrity_check_hashes_json_rows_in_postgresql_as_python_does(ctx):
    _postgresql_only(ctx.engine)
    made = _people(ctx)
    with transaction(ctx.engine) as conn:
        _reseal_practice(conn, made["practice"])
    for model in (Practice, Staff, Service):
        expression = integrity.pg_checksum_sql(model.__table__)
        assert expression is not None, model.__tablename__
        with transaction(ctx.engine, read_only=True) as conn:
            rows = conn.execute(select(model.__table__)).mappings().all()
            computed = dict(conn.execute(text(f"SELECT id, {expression} FROM {model.__tablename__}")).all())
        assert computed == {r["id"]: r["data_checksum"] for r in rows} == {r["id"]: row_checksum(dict(r)) for r in rows}
        assert integrity.check_row_checksums(ctx, model, _quiet)["status"] == "ok"


def _downgrade_to_0017(engine) -> None:
    from alembic import command

    cfg = migrate.alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0017")


def _seal(conn, table, row_id, checksum: str) -> None:
    conn.execute(update(table).where(table.c.id == row_id).values(data_checksum=checksum))


def _row(conn, table, row_id) -> dict:
    row = dict(conn.execute(select(table).where(table.c.id == row_id)).mappings().one())
    row.pop("data_checksum"), row.pop("sync_version")
    return row


def test_upgrading_reseals_rows_sealed_under_older_rules_and_leaves_damaged_rows_failing(ctx):
    made = _people(ctx)
    with transaction(ctx.engine) as conn:
        practice = made["practice"]
        conn.execute(update(Practice.__table__).where(Practice.__table__.c.id == practice)
                     .values(**{c: None for c in _PRACTICE_ADDED_IN_0016}))
        clients: list = []
        insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(3), created=clients)
        insert_sessions(conn, ctx.keyring, SYSTEM, [{"client_id": c, "starts_at": utcnow(), "notes": "talked"}
                                                    for c in clients])
        sessions = sorted(conn.execute(select(TherapySession.__table__.c.id)).scalars())
    _downgrade_to_0017(ctx.engine)
    # As revision 0017 left them: sessions and the practice sealed before 0016 added
    # columns, JSON in repr form, and one session edited afterwards without a new seal.
    staff_t, sessions_t, practices_t = Staff.__table__, TherapySession.__table__, Practice.__table__
    with transaction(ctx.engine) as conn:
        row = _row(conn, staff_t, made["staff"])
        _seal(conn, staff_t, made["staff"], row_checksum(
            {**row, "specializations": str(row["specializations"]), "working_hours": str(row["working_hours"])}))
        row = _row(conn, practices_t, practice)
        _seal(conn, practices_t, practice, row_checksum(
            {**{k: v for k, v in row.items() if k not in _PRACTICE_ADDED_IN_0016}, "settings": str(row["settings"])}))
        for session in sessions:
            row = _row(conn, sessions_t, session)
            _seal(conn, sessions_t, session, row_checksum({k: v for k, v in row.items() if k not in _ADDED_IN_0016}))
        conn.execute(update(sessions_t).where(sessions_t.c.id == sessions[1]).values(duration_minutes=5))
        versions = dict(conn.execute(select(sessions_t.c.id, sessions_t.c.sync_version)).all())
    assert migrate.upgrade(ctx.engine)[1] == migrate.head_revision()

    checks = {m.__tablename__: integrity.check_row_checksums(ctx, m, _quiet) for m in (Practice, Staff, TherapySession)}
    assert checks["practices"]["status"] == checks["staff"]["status"] == "ok"
    assert checks["therapy_sessions"]["status"] == "fail"
    assert checks["therapy_sessions"]["evidence"]["ids"] == [str(sessions[1])]
    with transaction(ctx.engine, read_only=True) as conn:
        assert dict(conn.execute(select(sessions_t.c.id, sessions_t.c.sync_version)).all()) == versions
        for shadow in ("sync_base_clients", "sync_base_therapy_sessions"):
            assert conn.execute(text(f"SELECT count(*) FROM {shadow}")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM sync_applying")).scalar_one() == 0


def test_downgrading_puts_json_rows_back_in_the_form_revision_0017_checks(ctx):
    made = _people(ctx)
    with transaction(ctx.engine) as conn:
        _reseal_practice(conn, made["practice"])
    _downgrade_to_0017(ctx.engine)
    with transaction(ctx.engine, read_only=True) as conn:
        row = dict(conn.execute(select(Staff.__table__).where(Staff.__table__.c.id == made["staff"])).mappings().one())
    assert row["data_checksum"] == row_checksum(
        {**row, "specializations": str(row["specializations"]), "working_hours": str(row["working_hours"])})
    migrate.upgrade(ctx.engine)
    assert integrity.check_row_checksums(ctx, Staff, _quiet)["status"] == "ok"
