"""Values to and from SQLite's stored text made by core.db.rawrows (in C where built,
core/db/_rows.c, else in Python) are exactly the ones SQLAlchemy makes: the same
values of the same types, the same text stored, and the same errors for what neither
takes. Sync reads and writes its batches this way (core.sync.stamp, core.sync.writes)."""
from __future__ import annotations

import os
import uuid
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType

import pytest
import sqlalchemy as sa
from hypothesis import given, settings, strategies as st

from strongroom.core.db import rawrows
from strongroom.core.db.jsoncodec import dumps, loads
from strongroom.core.db.types import JSONDoc, UTCDateTime
from strongroom.core.sync.writes import _bind_kind

_C = rawrows._rows

metadata = sa.MetaData()
things = sa.Table("things", metadata,
                  sa.Column("id", sa.Uuid, primary_key=True),
                  sa.Column("at", UTCDateTime),
                  sa.Column("doc", JSONDoc),
                  sa.Column("day", sa.Date),
                  sa.Column("name", sa.String))


class LaterUUID(uuid.UUID):
    pass


class LaterDatetime(datetime):
    pass


@pytest.fixture(params=["c", "python"])
def way(request, monkeypatch):
    """Each test runs with the C module and with the Python fallbacks alone."""
    if request.param == "c":
        if _C is None:
            pytest.skip("core/db/_rows.c was not built here")
    else:
        monkeypatch.setattr(rawrows, "_rows", None)
    return request.param


@pytest.fixture
def db():
    engine = sa.create_engine("sqlite://", json_serializer=dumps, json_deserializer=loads)
    metadata.create_all(engine)
    with engine.begin() as conn:
        yield conn


def test_the_c_module_is_built_in_ci():
    """CI builds core/db/_rows.c (`make install`); elsewhere its absence is allowed."""
    if os.environ.get("CI"):
        assert _C is not None, "core/db/_rows.c was not built"


STORED = [
    # (id, at, doc, day) as text SQLite may hold: as SQLAlchemy writes it, and spellings
    # it reads too (uppercase hex, dashes, braces; a T, no fraction, an offset).
    ("0123456789abcdef0123456789abcdef", "2024-03-01 09:30:00.000000", '{"a": [1, 2]}', "2024-03-01"),
    ("0123456789ABCDEF0123456789ABCDEF", "2024-03-01T09:30:00", "null", "0999-01-02"),
    ("01234567-89ab-cdef-0123-456789abcdef", "0999-01-02 03:04:05.000006", "7", None),
    ("{0123456789abcdef0123456789abcdee}", "2024-03-01 23:59:59.999999+05:00", None, "2024-02-29"),
    ("0123456789abcdef0123456789abcded", "2024-03-01 09:30:00.5", '"text"', "2024-03-01"),
    ("0123456789abcdef0123456789abcdec", None, "[]", None),
    ("00000000000000000000000000000000", "2024-03-01", "{}", None),
    ("ffffffffffffffffffffffffffffffff", "9999-12-31 23:59:59.999999", "{}", None),
]


def _typed(conn, way) -> list[list]:
    columns = [things.c.id, things.c.at, things.c.doc, things.c.day, things.c.name]
    records = conn.execute(sa.select(*[rawrows.raw(c) for c in columns]).order_by(things.c.name)).all()
    return rawrows.typed_rows(records, rawrows.read_kinds(columns, conn.dialect))


def test_what_sqlite_stores_is_read_as_sqlalchemy_reads_it(db, way):
    db.execute(sa.text("INSERT INTO things (id, at, doc, day, name) VALUES (:i, :a, :d, :y, :n)"),
               [{"i": i, "a": a, "d": d, "y": y, "n": f"{n:02d}"} for n, (i, a, d, y) in enumerate(STORED)])
    expected = [list(r) for r in db.execute(sa.select(things).order_by(things.c.name)).all()]
    got = _typed(db, way)
    assert got == expected
    assert [[type(v) for v in row] for row in got] == [[type(v) for v in row] for row in expected]
    assert all(row[1] is None or row[1].tzinfo is timezone.utc for row in got)
    assert all(type(row[0]) is uuid.UUID and row[0].is_safe is uuid.SafeUUID.unknown for row in got)


@pytest.mark.parametrize("column, text", [("id", "not a uuid at all, thirty-two ch"), ("id", "0123"),
                                          ("id", "0123456789abcdef0123456789abcdeg"),
                                          ("at", "2024-13-01 09:30:00.000000"), ("at", "2024-03-01 24:00:00"),
                                          ("at", "yesterday"), ("at", "2024-03-01 09:30:00.00000x")])
def test_text_neither_reads_fails_the_same_way(db, way, column, text):
    values = {"id": "0123456789abcdef0123456789abcdef", "at": None, **{column: text}}
    db.execute(sa.text("INSERT INTO things (id, at, name) VALUES (:id, :at, 'x')"), values)
    with pytest.raises(Exception) as theirs:
        db.execute(sa.select(things)).all()
    with pytest.raises(Exception) as ours:
        _typed(db, way)
    assert type(ours.value) is type(theirs.value)


def _bound(conn, rows, way) -> list[tuple]:
    names = [c.name for c in things.columns]
    return rawrows.bind_rows(rows, names, [_bind_kind(c.type, conn.dialect) for c in things.columns])


def _stored_by_sqlalchemy(conn, rows) -> list[tuple]:
    conn.execute(things.delete())
    conn.execute(sa.insert(things), rows)
    return [tuple(r) for r in conn.exec_driver_sql("SELECT id, at, doc, day, name FROM things ORDER BY name")]


WRITTEN = [
    {"id": uuid.UUID(int=1), "at": datetime(2024, 3, 1, 9, 30, tzinfo=timezone.utc), "doc": {"a": [1]},
     "day": date(2024, 3, 1), "name": "a"},
    {"id": LaterUUID(int=2), "at": datetime(2024, 3, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
     "doc": None, "day": None, "name": "b"},
    {"id": uuid.UUID(int=(1 << 128) - 1), "at": LaterDatetime(999, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc),
     "doc": [], "day": date(1, 1, 1), "name": "c"},
    {"id": uuid.UUID(int=0), "at": None, "doc": "text", "day": None, "name": None},
]


def test_rows_are_bound_as_sqlalchemy_binds_them(db, way):
    """The text stored for each value is the text SQLAlchemy stores, JSON's None as the
    document null among them; a row that is a mapping but not a dict binds the same."""
    expected = _stored_by_sqlalchemy(db, WRITTEN)
    db.execute(things.delete())
    db.exec_driver_sql("INSERT INTO things (id, at, doc, day, name) VALUES (?, ?, ?, ?, ?)",
                       _bound(db, [MappingProxyType(r) if i % 2 else r for i, r in enumerate(WRITTEN)], way))
    stored = [tuple(r) for r in db.exec_driver_sql("SELECT id, at, doc, day, name FROM things ORDER BY name")]
    assert stored == expected


@pytest.mark.parametrize("column, value, error", [("at", datetime(2024, 1, 1), ValueError),
                                                  ("at", "2024-01-01", AttributeError),
                                                  ("id", "0123456789abcdef0123456789abcdef", AttributeError),
                                                  ("name", None, None)])
def test_a_value_neither_binds_fails_the_same_way(db, way, column, value, error):
    row = {**WRITTEN[0], column: value}
    if error is None:
        assert _bound(db, [row], way)[0][4] is None
        return
    with pytest.raises(error):
        _bound(db, [row], way)
    missing = {k: v for k, v in WRITTEN[0].items() if k != column}
    with pytest.raises(KeyError):
        _bound(db, [missing], way)


@settings(max_examples=150, deadline=None)
@given(number=st.integers(min_value=0, max_value=(1 << 128) - 1),
       moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                           timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=3))])))
def test_any_uuid_and_datetime_go_there_and_back(number, moment):
    """Bound and read back through the C module, any UUID and any aware datetime are
    what went in, as SQLAlchemy's own processing returns them."""
    if _C is None:
        pytest.skip("core/db/_rows.c was not built here")
    column_id, column_at = things.c.id, things.c.at
    dialect = sa.create_engine("sqlite://").dialect
    value = uuid.UUID(int=number)
    bound = rawrows.bind_rows([{"id": value, "at": moment}], ["id", "at"],
                              [_bind_kind(column_id.type, dialect), _bind_kind(column_at.type, dialect)])
    assert bound == [(value.hex, moment.astimezone(timezone.utc).isoformat(" ", "microseconds")[:26])]
    read = rawrows.typed_rows(bound, rawrows.read_kinds([column_id, column_at], dialect))
    assert read == [[value, moment]]
    assert read[0][1].tzinfo is timezone.utc


def test_kinds_given_as_any_iterable_convert_as_a_list_of_them_would():
    """The C module keeps what it was given alive while it converts: kinds made on the
    fly (a generator of new tuples and functions, gone once read into a list) used to be
    freed before their functions were called. In a process of its own: that was a crash."""
    if _C is None:
        pytest.skip("core/db/_rows.c was not built here")
    import subprocess
    import sys
    program = """
from strongroom.core.db import _rows
for i in range(50):
    kinds = ((0, lambda v, i=i: v + str(i)) for _ in range(1))
    assert _rows.typed_rows([("x",)] * 1000, 1, kinds)[999] == ["x" + str(i)]
    kinds = ((0, lambda v, i=i: v + str(i)) for _ in range(1))
    assert _rows.bind_rows([{"a": "x"}] * 1000, iter(["a"]), kinds)[999] == ("x" + str(i),)
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
