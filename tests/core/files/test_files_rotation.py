"""Key rotation and file content: rotation moves a file's row (its sealed name) to the
client's new key but leaves the content sealed under the key it was added with, so a
retired key stays (retired, not destroyed) while a live file of its client may need
it, and goes once no live file does."""
from __future__ import annotations

from sqlalchemy import select

from strongroom.core.crypto import dek_rotation, key_status
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import ClientFile, DataKey, KeyState
from strongroom.core.files import content
from strongroom.core.files.repository import delete_objects, remove_file
from strongroom.core.files.store import open_files_target
from tests.core.conftest import ALL, fetch_file, file_bytes, seed_clients, store_file

_keys, _files = DataKey.__table__, ClientFile.__table__


def _client_keys(ctx, client_id) -> dict:
    with ctx.engine.connect() as conn:
        return {r.id: r.state for r in conn.execute(select(_keys.c.id, _keys.c.state).where(
            _keys.c.client_id == client_id))}


def test_a_retired_key_file_content_needs_is_kept_until_the_file_goes(ctx):
    with_file, without = seed_clients(ctx, n=2)
    data = file_bytes(2 * content.CHUNK_SIZE + 3, seed=8)
    added = store_file(ctx, with_file, data)
    (old_key,) = _client_keys(ctx, with_file)
    (other_old,) = _client_keys(ctx, without)

    dek_rotation.rotate_deks(ctx, client_ids=[with_file, without], actor="test:rotation")
    with ctx.engine.connect() as conn:
        row_key = conn.execute(select(_files.c.key_id).where(_files.c.id == added["id"])).scalar_one()
    assert row_key != old_key                            # the name moved to the new key...
    destroyed = key_status.destroy_retired_unused(ctx, actor="test:rotation")
    assert str(old_key) not in destroyed.key_ids and str(other_old) in destroyed.key_ids
    assert _client_keys(ctx, with_file)[old_key] == KeyState.RETIRED
    assert fetch_file(ctx, added["id"]) == data                 # ...the content still opens under the old one

    target = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        keys = remove_file(conn, ctx.keyring, ALL, target, added["id"])
    delete_objects(target, keys)
    assert str(old_key) in key_status.destroy_retired_unused(ctx, actor="test:rotation").key_ids
    assert _client_keys(ctx, with_file)[old_key] == KeyState.DESTROYED
