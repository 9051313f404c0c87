"""Key records carry change versions the database assigns, and are never deleted.

Incremental backups copy only the `data_keys` rows whose version moved; that is safe
only if every write moves it (whatever path wrote it) and no row disappears."""
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import DataKey, KeyPurpose
from strongroom.core.repository.changes import current_change_version, hold_tracking, resume_tracking

_keys = DataKey.__table__


def _version(conn, key_id) -> int:
    return conn.execute(select(_keys.c.sync_version).where(_keys.c.id == key_id)).scalar_one()


def test_a_new_key_gets_the_next_change_version(ctx):
    with transaction(ctx.engine) as conn:
        before = current_change_version(conn)
        key_id = ctx.keyring.create_key(conn, KeyPurpose.SYSTEM).key_id
        assert _version(conn, key_id) == current_change_version(conn) > before


def test_every_update_moves_the_version_whoever_writes_it(ctx):
    with transaction(ctx.engine) as conn:
        key_id = ctx.keyring.create_key(conn, KeyPurpose.SYSTEM).key_id
        first = _version(conn, key_id)
    with transaction(ctx.engine) as conn:       # a raw UPDATE, as a rewrap or a shred does
        conn.execute(update(_keys).where(_keys.c.id == key_id).values(kek_id="other"))
        second = _version(conn, key_id)
    with transaction(ctx.engine) as conn:       # even one that tries to set it back
        conn.execute(update(_keys).where(_keys.c.id == key_id).values(kek_id="third", sync_version=first))
        third = _version(conn, key_id)
    assert first < second < third


def test_key_records_are_never_deleted(ctx):
    with transaction(ctx.engine) as conn:
        key_id = ctx.keyring.create_key(conn, KeyPurpose.SYSTEM).key_id
    with pytest.raises(DBAPIError, match="never deleted"):
        with transaction(ctx.engine) as conn:
            conn.execute(delete(_keys).where(_keys.c.id == key_id))
    with ctx.engine.connect() as conn:
        assert conn.execute(select(_keys.c.id).where(_keys.c.id == key_id)).scalar_one() == key_id


def test_a_restore_writes_key_records_exactly_as_saved(ctx):
    with transaction(ctx.engine) as conn:
        key = ctx.keyring.new_key(KeyPurpose.SYSTEM)
        hold_tracking(conn)
        conn.execute(_keys.insert(), [{**key.row, "sync_version": 7}])
        conn.execute(update(_keys).where(_keys.c.id == key.row["id"]).values(kek_id="saved"))
        assert _version(conn, key.row["id"]) == 7
        resume_tracking(conn)
    with transaction(ctx.engine) as conn:      # tracking is back once the load is over
        conn.execute(update(_keys).where(_keys.c.id == key.row["id"]).values(kek_id="later"))
        assert _version(conn, key.row["id"]) == current_change_version(conn) != 7
