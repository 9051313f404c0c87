"""COPY text encoding and decoding without a server: the exact bytes for each rule,
strict parsing with PHI-free errors, and encode -> decode -> encode identity."""
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.sql.elements import Null
from strongroom.core.backup import copytext as ct
from strongroom.core.db.models import Base, ClientStatus, Role, SyncConflict, TherapySession, User
from strongroom.core.errors import IntegrityError

USERS = User.__table__
SESSIONS = TherapySession.__table__
CONFLICTS = SyncConflict.__table__


def _one(table, col, value) -> bytes:
    """The rendering of one value in `col`, through a full row encode."""
    cols = ct.columns(table)
    row = [None] * len(cols)
    row[[c.name for c in cols].index(col)] = value
    fields = ct.encode_rows(cols, [row]).rstrip(b"\n").split(b"\t")
    return fields[[c.name for c in cols].index(col)]


def test_every_table_has_an_encoder_and_a_decoder_for_every_column():
    for table in Base.metadata.sorted_tables:
        cols = ct.columns(table)
        assert [c.name for c in cols] == [c.name for c in table.columns]
        assert len(ct.encoders(cols)) == len(ct.decoders(cols)) == len(cols)


@pytest.mark.parametrize("value, expected", [
    ("plain", b"plain"),
    ("", b""),
    ("a\\b\tc\nd\re\x08f\x0cg\x0bh", b"a\\\\b\\tc\\nd\\re\\bf\\fg\\vh"),
    ("\x01\x1f\x7f", b"\x01\x1f\x7f"),  # other controls travel raw, like PostgreSQL's
    ("é😀e\u0301", "é😀e\u0301".encode()),
])
def test_text_escaping(value, expected):
    assert _one(USERS, "full_name", value) == expected


def test_scalars():
    assert _one(USERS, "email", None) == b"\\N"
    assert _one(USERS, "role", Role.OP_ADMIN) == b"admin"
    assert _one(USERS, "role", "STAFF") == b"STAFF"
    assert _one(USERS, "totp_enabled", True) == b"t"
    assert _one(USERS, "disabled", False) == b"f"
    assert _one(USERS, "totp_last_step", -9223372036854775808) == b"-9223372036854775808"
    assert _one(USERS, "id", uuid.UUID("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11")) == b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert _one(USERS, "totp_secret_enc", b"") == b"\\\\x"
    assert _one(USERS, "totp_secret_enc", b"\x00\xff\n") == b"\\\\x00ff0a"


@pytest.mark.parametrize("value, expected", [
    (datetime(2026, 11, 23, 1, 0, 37, 123400, UTC), b"2026-11-23 01:00:37.1234+00"),
    (datetime(2026, 11, 23, 1, 0, 37, 0, UTC), b"2026-11-23 01:00:37+00"),
    (datetime(2026, 11, 23, 1, 0, 37, 120000, UTC), b"2026-11-23 01:00:37.12+00"),
    (datetime(99, 1, 2, 3, 4, 5, 1, UTC), b"0099-01-02 03:04:05.000001+00"),
    (datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))), b"2026-01-01 00:00:00+00"),
])
def test_timestamptz(value, expected):
    assert _one(USERS, "locked_until", value) == expected


def test_naive_timestamp_is_refused_without_the_value():
    with pytest.raises(IntegrityError, match=r"users: row 1, column locked_until") as err:
        _one(USERS, "locked_until", datetime(2026, 1, 1, 12, 34))
    assert "12" not in str(err.value).split("column")[1]


def test_date():
    cols = ct.columns(Base.metadata.tables["clients"])
    fields = dict(zip([c.name for c in cols],
                      ct.encode_rows(cols, [[date(99, 2, 3) if c.name == "intake_date" else None for c in cols]])
                      .rstrip(b"\n").split(b"\t")))
    assert fields["intake_date"] == b"0099-02-03"


@pytest.mark.parametrize("value, expected", [
    ({}, "{}"), ([], "[]"), (None, "null"), ("s", '"s"'),
    ({"bb": [1, 2], "a": 1, "ab": {}, "b": True, "é": None},
     '{"a": 1, "b": true, "ab": {}, "bb": [1, 2], "é": null}'),
    ({"k": "x\"\\\n\t\x01\x7f/é😀"}, '{"k": "x\\"\\\\\\n\\t\\u0001\x7f/é😀"}'),
    ([Decimal("2.50"), Decimal("1e3"), Decimal("-0.0"), Decimal("1e-5"), 1.5e16, 0.1, -0.0],
     "[2.50, 1000, 0.0, 0.00001, 15000000000000000, 0.1, 0.0]"),
])
def test_render_jsonb(value, expected):
    assert ct.render_jsonb(value) == expected


def test_json_column_takes_document_text_and_is_copy_escaped():
    assert _one(CONFLICTS, "local", '{"b":"x\\ny",  "a" : 1.50}') == b'{"a": 1.50, "b": "x\\\\ny"}'
    assert _one(CONFLICTS, "base", "null") == b"null"
    assert _one(CONFLICTS, "base", None) == b"\\N"


def test_encode_row_by_name_equals_positional():
    cols = ct.columns(USERS)
    row = {c.name: None for c in cols} | {"username": "u\tv", "failed_logins": 3}
    assert ct.encode_row(cols, row) == ct.encode_rows(cols, [[row[c.name] for c in cols]])
    assert ct.encode_rows(cols, []) == b""


def test_decode_types_and_json_nulls():
    cols = ct.columns(CONFLICTS)
    row = {c.name: None for c in cols}
    row |= {"id": uuid.uuid4(), "peer_id": uuid.uuid4(), "row_id": uuid.uuid4(), "table_name": "t",
            "base": "null", "local": '{"a": [1, "x"]}', "remote": "{}", "status": "open",
            "created_at": datetime(2026, 1, 2, 3, 4, 5, 6, UTC)}
    data = ct.encode_row(cols, row)
    (back,) = ct.decode_lines(cols, data)
    assert back["id"] == row["id"] and isinstance(back["id"], uuid.UUID)
    assert back["created_at"] == row["created_at"] and back["created_at"].tzinfo is UTC
    assert back["local"] == {"a": [1, "x"]} and back["remote"] == {}
    assert back["base"] is None  # the JSON document null
    assert isinstance(back["resolution"], Null)  # SQL NULL, as SQLAlchemy's JSON type needs it
    assert back["resolved_by"] is None


def test_decode_enum_members():
    cols = ct.columns(Base.metadata.tables["clients"])
    row = [None] * len(cols)
    row[[c.name for c in cols].index("status")] = ClientStatus.VIP
    (back,) = ct.decode_lines(cols, ct.encode_rows(cols, [row]))
    assert back["status"] is ClientStatus.VIP


SECRET = "912-34-5678"


@pytest.mark.parametrize("mutate, message", [
    (lambda f: f[:-1], r"line 2: expected 19 columns, got 18"),
    (lambda f: f + [b"x"], r"line 2: expected 19 columns, got 20"),
    (lambda f: _set(f, "failed_logins", SECRET.encode()), r"line 2, column failed_logins: bad value"),
    (lambda f: _set(f, "totp_enabled", b"true"), r"line 2, column totp_enabled: bad value"),
    (lambda f: _set(f, "full_name", SECRET.encode() + b"\\q"), r"line 2, column full_name: bad escape"),
    (lambda f: _set(f, "full_name", SECRET.encode() + b"\\"), r"line 2, column full_name: bad escape"),
    (lambda f: _set(f, "full_name", b"\xff" + SECRET.encode()), r"line 2, column full_name: bad value"),
    (lambda f: _set(f, "totp_secret_enc", b"\\\\x" + SECRET.encode()), r"line 2, column totp_secret_enc: bad value"),
    (lambda f: _set(f, "role", SECRET.encode()), r"line 2, column role: bad value"),
    (lambda f: _set(f, "id", SECRET.encode()), r"line 2, column id: bad value"),
    (lambda f: _set(f, "created_at", b"2026-01-01 00:00:00+01"), r"line 2, column created_at: bad value"),
    (lambda f: _set(f, "locked_until", b"2026-02-30 00:00:00+00"), r"line 2, column locked_until: bad value"),
])
def test_decode_errors_name_table_line_column_never_the_value(mutate, message):
    cols = ct.columns(USERS)
    good = ct.encode_rows(cols, [_user_row(cols)])
    bad = b"\t".join(mutate(good.rstrip(b"\n").split(b"\t"))) + b"\n"
    with pytest.raises(IntegrityError, match="^users: " + message) as err:
        list(ct.decode_lines(cols, good + bad))
    assert SECRET not in str(err.value) and err.value.__cause__ is None
    assert err.value.__context__ is None or err.value.__suppress_context__


def test_truncated_stream_is_refused():
    cols = ct.columns(USERS)
    data = ct.encode_rows(cols, [_user_row(cols)] * 2)
    with pytest.raises(IntegrityError, match=r"users: line 2: truncated"):
        list(ct.decode_lines(cols, data[:-1]))


def _set(fields, name, value):
    fields[[c.name for c in ct.columns(USERS)].index(name)] = value
    return fields


def _user_row(cols):
    values = {"id": uuid.uuid4(), "practice_id": uuid.uuid4(), "username": "u", "full_name": "F",
              "role": Role.STAFF, "password_hash": "h", "totp_enabled": False, "failed_logins": 0,
              "disabled": False, "created_at": datetime(2026, 1, 1, tzinfo=UTC),
              "updated_at": datetime(2026, 1, 1, tzinfo=UTC), "sync_version": 1}
    return [values.get(c.name) for c in cols]


# --- properties ----------------------------------------------------------------------

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | texts
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12)
timestamps = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31),
                          timezones=st.just(UTC))


@st.composite
def conflict_rows(draw):
    import json
    return {
        "id": draw(st.uuids()), "peer_id": draw(st.uuids()), "row_id": draw(st.uuids()),
        "table_name": draw(texts), "status": draw(texts),
        "base": draw(st.none() | json_values.map(json.dumps)),
        "local": json.dumps(draw(json_values)), "remote": json.dumps(draw(json_values)),
        "resolution": draw(st.none() | json_values.map(lambda v: json.dumps(v, ensure_ascii=False))),
        "resolved_by": draw(st.none() | texts), "resolved_at": draw(st.none() | timestamps),
        "created_at": draw(timestamps),
    }


@st.composite
def session_rows(draw):
    return {
        "id": draw(st.uuids()), "practice_id": draw(st.uuids()), "client_id": draw(st.uuids()),
        "practitioner_id": draw(st.none() | st.uuids()), "key_id": draw(st.uuids()),
        "created_at": draw(timestamps), "updated_at": draw(timestamps),
        "sync_version": draw(st.integers(-2**63, 2**63 - 1)), "data_checksum": draw(st.none() | texts),
        "deleted_at": draw(st.none() | timestamps), "starts_at": draw(timestamps),
        "duration_minutes": draw(st.integers(-2**31, 2**31 - 1)), "session_type": draw(texts),
        "notes_enc": draw(st.none() | st.binary(max_size=300)),
        "status": draw(st.sampled_from(list(TherapySession.__table__.c.status.type.enum_class))),
        "payment_status": draw(st.sampled_from(["PENDING", "PAID"])),
        "price_cents": draw(st.none() | st.integers(-2**31, 2**31 - 1)),
        "service_id": draw(st.none() | st.uuids()), "staff_id": draw(st.none() | st.uuids()),
        "reminder_sent": draw(st.booleans()),
        "session_number": draw(st.none() | st.integers(-2**31, 2**31 - 1)),
        "soap_summary_enc": draw(st.none() | st.binary(max_size=100)),
        "billing_codes_enc": draw(st.none() | st.binary(max_size=100)),
        "insurance_info_enc": draw(st.none() | st.binary(max_size=100)),
        "consent_verified": draw(st.booleans()),
    }


def _reencodable(table, row: dict) -> list:
    """A decoded row back in encode_rows' input shape (JSON columns as text)."""
    cols = ct.columns(table)
    out = []
    for c in cols:
        v = row[c.name]
        if isinstance(v, Null):
            v = None
        elif ct._kind(c) == "json":
            import json
            v = json.dumps(v)
        out.append(v)
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(conflict_rows(), max_size=5))
def test_encode_decode_encode_is_identity_for_json_rows(rows):
    cols = ct.columns(CONFLICTS)
    data = ct.encode_rows(cols, [[r[c.name] for c in cols] for r in rows])
    decoded = list(ct.decode_lines(cols, data))
    assert len(decoded) == len(rows)
    assert ct.encode_rows(cols, [_reencodable(CONFLICTS, d) for d in decoded]) == data


@settings(max_examples=200, deadline=None)
@given(st.lists(session_rows(), max_size=5))
def test_encode_decode_encode_is_identity_for_scalar_rows(rows):
    cols = ct.columns(SESSIONS)
    data = ct.encode_rows(cols, [[r[c.name] for c in cols] for r in rows])
    decoded = list(ct.decode_lines(cols, data))
    for original, back in zip(rows, decoded):
        for c in cols:
            assert back[c.name] == original[c.name], c.name
    assert ct.encode_rows(cols, [[d[c.name] for c in cols] for d in decoded]) == data


def test_encode_errors_name_row_and_column_never_the_value():
    cols = ct.columns(USERS)
    good = _user_row(cols)
    with pytest.raises(IntegrityError, match=r"^users: row 3: expected 19 columns, got 18$"):
        ct.encode_rows(cols, [good, good, good[:-1]])
    bad = list(good)
    bad[[c.name for c in cols].index("totp_secret_enc")] = SECRET  # str where bytes belong
    with pytest.raises(IntegrityError, match=r"^users: row 2, column totp_secret_enc: ") as err:
        ct.encode_rows(cols, [good, bad])
    assert SECRET not in str(err.value) and err.value.__suppress_context__


def test_key_ranges_select_a_part_of_a_uuid_or_integer_keyed_table():
    from strongroom.core.db.models import AuditLog, ChangeCounter
    low, high = uuid.UUID(int=5), uuid.UUID(int=9)
    sql = ct.copy_out_sql(SESSIONS, key_range=(str(low), str(high)))
    assert f"WHERE \"id\" >= '{low}'::uuid AND \"id\" < '{high}'::uuid ORDER BY \"id\"" in sql
    assert "WHERE \"id\" < 12 ORDER BY" in ct.copy_out_sql(AuditLog.__table__, key_range=(None, "12"))
    assert ct.range_key(ChangeCounter.__table__) is None          # a text key: no ranges
    with pytest.raises(ValueError, match="change_counter: key ranges need"):
        ct.copy_out_sql(ChangeCounter.__table__, key_range=("a", None))


def test_a_bound_that_is_not_a_key_is_refused_not_spliced_into_sql():
    with pytest.raises(ValueError):
        ct.copy_out_sql(SESSIONS, key_range=("x'; DROP TABLE clients; --", None))
    with pytest.raises(ValueError):
        ct.copy_out_sql(Base.metadata.tables["audit_logs"], key_range=("1 OR 1=1", None))


def test_first_key_reads_the_key_of_a_segments_first_row():
    cols = ct.columns(USERS)
    ids = [uuid.UUID(int=7), uuid.UUID(int=8)]
    rows = [[ids[n] if c.name == "id" else None for c in cols] for n in range(2)]
    assert ct.first_key(USERS, ct.encode_rows(cols, rows)) == str(ids[0])
