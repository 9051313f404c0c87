"""The model classes (core.db.models) stand for Core tables: columns as attributes, the
class itself wherever SQLAlchemy takes a table, mixin columns each table's own; and
importing them does not import the ORM (what every process's start paid for it)."""
from __future__ import annotations

import subprocess
import sys

from sqlalchemy import Table, delete, insert, select, update

from strongroom.core.db.models import Base, Client, Practice, TherapySession


def test_a_class_is_its_table():
    table = Client.__table__
    assert isinstance(table, Table) and table is Base.metadata.tables["clients"]
    assert Client.id is table.c.id and Client.ssn_enc is table.c.ssn_enc
    assert str(select(Client).where(Client.id == None)) == str(select(table).where(table.c.id == None))  # noqa: E711
    for statement in (insert(Client), update(Client), delete(Client)):
        assert statement.table is table


def test_mixin_columns_belong_to_each_table():
    """id, practice_id and the sync columns come from mixins, copied per table."""
    assert Client.practice_id.table is Client.__table__
    assert TherapySession.practice_id.table is TherapySession.__table__
    assert Client.id is not TherapySession.id and Practice.updated_at.table is Practice.__table__
    assert [c.name for c in Client.__table__.columns][-7:] == \
        ["practice_id", "id", "created_at", "updated_at", "sync_version", "data_checksum", "deleted_at"]
    assert {fk.target_fullname for fk in Client.practice_id.foreign_keys} == {"practices.id"}


def test_importing_the_models_does_not_import_the_orm():
    code = ("import sys; import strongroom.core.db.models, strongroom.core.repository.clients; "
            "print('sqlalchemy.orm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
