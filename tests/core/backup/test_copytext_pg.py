"""Every COPY text rule checked against a real PostgreSQL 15: the same values inserted
through SQLAlchemy into PostgreSQL and into SQLite; PostgreSQL's `COPY ... TO STDOUT`
bytes must equal `encode_rows` over the SQLite rows (and over the PostgreSQL rows)."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, null
from strongroom.core.backup import copytext as ct
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import (
    Base,
    DataKey,
    KeyPurpose,
    Practice,
    Role,
    SyncPeer,
)

from tests.conftest import PG_AVAILABLE
from tests.core.backup._engines import drop_pg, encode_table, new_pg, new_sqlite, pg_copy_out

pytestmark = pytest.mark.skipif(not PG_AVAILABLE, reason="needs PostgreSQL")

T = {name: Base.metadata.tables[name] for name in
     ("practices", "users", "data_keys", "clients", "sync_peers", "sync_conflicts",
      "security_events", "audit_logs")}
PRACTICE = uuid.UUID("00000000-0000-4000-8000-000000000001")
PEER = uuid.UUID("00000000-0000-4000-8000-000000000002")
KEY = uuid.UUID("00000000-0000-4000-8000-000000000003")
WHEN = datetime(2026, 1, 1, tzinfo=UTC)
TRICKY = ["", "plain", "tab\there", "new\nline", "cr\rlf\r\n", "back\\slash\\", "\\N", "\\.",
          "\x08\x0b\x0c\x01\x1f\x7f", "é ü ß", "emoji 😀👩‍⚕️", "e\u0301 combining", "中文", "'\"quotes\"'"]


@pytest.fixture(scope="module")
def engines(pg_template, sqlite_template, tmp_path_factory):
    name, pg = new_pg(pg_template)
    lite = new_sqlite(sqlite_template, tmp_path_factory.mktemp("copytext"))
    base = [(Practice, {"id": PRACTICE, "name": "P", "timezone": "UTC", "settings": {},
                        "created_at": WHEN, "updated_at": WHEN, "sync_version": 1}),
            (SyncPeer, {"id": PEER, "name": "peer", "url": "x", "direction": "both", "strategies": {},
                        "is_active": True, "created_at": WHEN}),
            (DataKey, {"id": KEY, "purpose": KeyPurpose.CLIENT, "version": 1, "kek_id": "k",
                       "state": "active", "created_at": WHEN})]
    for engine in (pg, lite):
        with transaction(engine) as conn:
            for model, row in base:
                conn.execute(insert(model.__table__), [row])
    yield pg, lite
    lite.dispose()
    drop_pg(name, pg)


def _insert_both(engines, table, rows: list[dict]) -> None:
    for engine in engines:
        with transaction(engine) as conn:
            conn.execute(insert(table), rows)


def _assert_identical(engines, table) -> bytes:
    pg, lite = engines
    native = pg_copy_out(pg, table)
    assert encode_table(lite, table) == native, table.name
    assert encode_table(pg, table) == native, table.name
    # and the parse of PostgreSQL's own output re-encodes to the same bytes
    decoded = list(ct.decode_lines(ct.columns(table), native))
    assert len(decoded) == native.count(b"\n")
    return native


def _clear(engines, table) -> None:
    for engine in engines:
        with transaction(engine) as conn:
            conn.execute(delete(table))


def _user(i: int, text: str, **over) -> dict:
    row = {"id": uuid.UUID(int=i + 1000), "practice_id": PRACTICE, "username": f"u{i}",
           "full_name": text, "email": text or None, "role": list(Role)[i % len(Role)],
           "password_hash": text, "totp_secret_enc": text.encode(), "totp_enabled": bool(i % 2),
           "totp_last_step": None, "failed_logins": i, "locked_until": None, "last_login_at": None,
           "disabled": False, "created_at": WHEN, "updated_at": WHEN, "sync_version": i,
           "data_checksum": None, "deleted_at": None}
    return row | over


def test_tricky_fixed_values(engines):
    micro = [0, 1, 10, 120000, 123456, 999999, 500000]
    users = [_user(i, s, locked_until=datetime(2026, 11, 23, 1, 0, 37, micro[i % len(micro)], UTC),
                   last_login_at=datetime(1 + i, 12, 31, 23, 59, 59, micro[(i + 3) % len(micro)], UTC),
                   totp_last_step=[0, -1, 2**63 - 1, -2**63, None][i % 5])
             for i, s in enumerate(TRICKY)]
    users.append(_user(99, "", email=None, totp_secret_enc=b"", failed_logins=2**31 - 1,
                       deleted_at=datetime(9999, 12, 31, 23, 59, 59, 999999, UTC)))
    _insert_both(engines, T["users"], users)
    _assert_identical(engines, T["users"])

    clients = [{"id": uuid.UUID(int=i + 2000), "practice_id": PRACTICE, "key_id": KEY,
                "first_name_enc": bytes(range(256)) * i, "last_name_enc": b"\x00\\\n\t",
                "intake_date": [date(1, 1, 1), date(99, 2, 3), date(2024, 2, 29), date(9999, 12, 31), None][i % 5],
                "retention_expiry_date": date(2030, 1, 1), "status": "VIP", "data_sensitivity": "high",
                "created_at": WHEN, "updated_at": WHEN, "sync_version": 0,
                "conflict_resolution_strategy": TRICKY[i]}
               for i in range(len(TRICKY))]
    _insert_both(engines, T["clients"], clients)
    _assert_identical(engines, T["clients"])

    docs = [{}, [], {"b": 1, "a": 2, "aa": 3, "": 4, "é": 5, "z": 6},
            {"nested": {"list": [1, [2, [3, {}]], {"k": None}], "t": True, "f": False}},
            {"s": "quote\" back\\ slash/ nl\n tab\t ctl\x01\x1f del\x7f é 😀 e\u0301"},
            {"n": [0, -1, 2**63, -2**70, 1.5, 0.1, 1e16, 1.5e-7, 1e300, -0.0, 123456789.125]},
            ["a", 1, None, True], {"\\N": "\\.", "tab\tkey": "x"}]
    conflicts = [{"id": uuid.UUID(int=i + 3000), "peer_id": PEER, "table_name": "t", "row_id": uuid.uuid4(),
                  "base": [None, null(), doc][i % 3], "local": doc, "remote": docs[-1 - i],
                  "status": "open", "resolution": null() if i % 2 else None, "created_at": WHEN}
                 for i, doc in enumerate(docs)]
    _insert_both(engines, T["sync_conflicts"], conflicts)
    native = _assert_identical(engines, T["sync_conflicts"])
    assert b"\tnull\t" in native and b"\t\\N\t" in native  # JSON null and SQL NULL both present

    events = [{"id": 2**40 + i, "occurred_at": WHEN, "event_type": "e", "severity": "info",
               "description": s, "details": {"text": s, "i": i}} for i, s in enumerate(TRICKY)]
    _insert_both(engines, T["security_events"], events)
    _assert_identical(engines, T["security_events"])

    audit = [{"id": i + 1, "occurred_at": WHEN, "actor": s or "a", "action": "CREATE",
              "details": json.dumps({"s": s}), "prev_hash": "0" * 64, "hash": f"{i:064x}"}
             for i, s in enumerate(TRICKY)]
    _insert_both(engines, T["audit_logs"], audit)
    _assert_identical(engines, T["audit_logs"])


# --- hypothesis: many random values, one PostgreSQL round trip per example -----------

def _texts(max_size: int):
    return st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=max_size)


timestamps = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC))
json_docs = st.recursive(
    st.none() | st.booleans() | st.integers(-2**80, 2**80) | _texts(20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts(8), inner, max_size=5),
    max_leaves=15).filter(lambda v: isinstance(v, (dict, list)))


@st.composite
def users(draw, i):
    return _user(i, draw(_texts(60)), email=draw(st.none() | _texts(60)),
                 totp_secret_enc=draw(st.none() | st.binary(max_size=64)),
                 totp_last_step=draw(st.none() | st.integers(-2**63, 2**63 - 1)),
                 failed_logins=draw(st.integers(-2**31, 2**31 - 1)), totp_enabled=draw(st.booleans()),
                 locked_until=draw(st.none() | timestamps), created_at=draw(timestamps),
                 role=draw(st.sampled_from(list(Role))), data_checksum=draw(st.none() | _texts(64)))


@st.composite
def conflicts(draw, i):
    return {"id": uuid.UUID(int=i + 5000), "peer_id": PEER, "table_name": draw(_texts(64)),
            "row_id": draw(st.uuids()), "base": draw(st.just(null()) | st.none() | json_docs),
            "local": draw(json_docs), "remote": draw(json_docs), "status": "open",
            "resolution": draw(st.just(null()) | json_docs), "resolved_by": draw(st.none() | _texts(60)),
            "resolved_at": draw(st.none() | timestamps), "created_at": draw(timestamps)}


@st.composite
def batches(draw):
    n = draw(st.integers(1, 6))
    return ([draw(users(i)) for i in range(n)], [draw(conflicts(i)) for i in range(n)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(batch=batches())
def test_random_values_match_postgres_byte_for_byte(engines, batch):
    user_rows, conflict_rows = batch
    for table in (T["sync_conflicts"], T["users"]):
        _clear(engines, table)
    try:
        _insert_both(engines, T["users"], user_rows)
        _insert_both(engines, T["sync_conflicts"], conflict_rows)
        _assert_identical(engines, T["users"])
        _assert_identical(engines, T["sync_conflicts"])
    finally:
        for table in (T["sync_conflicts"], T["users"]):
            _clear(engines, table)
