"""The KEK on disk and the keyring of wrapped data keys, on both engines."""
from __future__ import annotations

import threading
import uuid

import pytest
from crypto_helpers import add_client, add_practice, decrypt_all, seed
from sqlalchemy import select, update

from strongroom.core.config import KeySettings
from strongroom.core.context import open_context
from strongroom.core.crypto.kek import (
    encode_kek,
    generate_kek,
    kek_id_of,
    load_keks,
    pending_path,
    read_kek_file,
    write_kek_file,
)
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import DataKey, KeyPurpose, KeyState
from strongroom.core.errors import CryptoError, KeyUnavailableError

_keys = DataKey.__table__


# -- the key file -----------------------------------------------------------------------

def test_key_file_is_written_owner_only_and_reads_back(tmp_path):
    path = tmp_path / "kek.key"
    key = generate_kek()
    write_kek_file(path, key)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_kek_file(path).key == key


def test_key_file_is_never_overwritten(tmp_path):
    path = tmp_path / "kek.key"
    write_kek_file(path, generate_kek())
    with pytest.raises(KeyUnavailableError, match="refusing to overwrite"):
        write_kek_file(path, generate_kek())


def test_missing_key_file_error_names_the_path_and_the_way_back(tmp_path):
    path = tmp_path / "gone.key"
    with pytest.raises(KeyUnavailableError) as err:
        read_kek_file(path)
    assert str(path) in str(err.value) and "keys recover" in str(err.value)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_group_or_world_accessible_key_file_is_refused(tmp_path, mode):
    path = tmp_path / "kek.key"
    write_kek_file(path, generate_kek())
    path.chmod(mode)
    with pytest.raises(KeyUnavailableError, match="chmod 600"):
        read_kek_file(path)


def test_key_file_with_garbage_is_refused_without_echoing_it(tmp_path):
    path = tmp_path / "kek.key"
    path.write_text("strongroom-kek-v1:c2hvcnQ=\n")
    path.chmod(0o600)
    with pytest.raises(KeyUnavailableError, match="must be 32 bytes") as err:
        read_kek_file(path)
    assert "c2hvcnQ" not in str(err.value)


def test_load_keks_offers_the_pending_rotation_key_second(tmp_path):
    path = tmp_path / "kek.key"
    current, pending = generate_kek(), generate_kek()
    write_kek_file(path, current)
    write_kek_file(pending_path(path), pending)
    keks = load_keks(KeySettings(kek_file=path, kek_env=None, kek_credential=None))
    assert [k.key for k in keks] == [current, pending]


def test_environment_key_takes_precedence_over_the_file(tmp_path, monkeypatch):
    key = generate_kek()
    monkeypatch.setenv("SR_TEST_KEK", encode_kek(key))
    keks = load_keks(KeySettings(kek_file=tmp_path / "absent.key", kek_env="SR_TEST_KEK",
                                 kek_credential=None))
    assert keks[0].key == key and "SR_TEST_KEK" in keks[0].source


def test_systemd_credential_takes_precedence_over_environment_and_file(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    key = generate_kek()
    (creds / "strongroom-kek").write_text(encode_kek(key))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    monkeypatch.setenv("SR_TEST_KEK", encode_kek(generate_kek()))
    keks = load_keks(KeySettings(kek_file=tmp_path / "absent.key", kek_env="SR_TEST_KEK",
                                 kek_credential="strongroom-kek"))
    assert keks[0].key == key and "systemd credential" in keks[0].source


def test_no_key_source_at_all_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(KeyUnavailableError, match="no key-encryption key"):
        load_keks(KeySettings(kek_file=None, kek_env=None, kek_credential=None))


def test_kek_id_is_a_fingerprint_not_the_key():
    key = generate_kek()
    assert kek_id_of(key) == kek_id_of(key) != kek_id_of(generate_kek())
    assert kek_id_of(key) not in key.hex()


# -- the keyring ------------------------------------------------------------------------

def test_wrong_kek_cannot_unwrap_and_the_error_names_both_kek_ids(ctx, tmp_path):
    seed(ctx.engine, ctx.keyring, clients=1)
    other_file = tmp_path / "other.key"
    write_kek_file(other_file, generate_kek())
    wrong = Keyring([read_kek_file(other_file)])
    with transaction(ctx.engine, read_only=True) as conn:
        key_id = conn.execute(select(_keys.c.id).where(_keys.c.purpose == KeyPurpose.CLIENT)).scalar()
        with pytest.raises(KeyUnavailableError) as err:
            wrong.cipher(conn, key_id)
    assert ctx.keyring.kek_id in str(err.value) and wrong.kek_id in str(err.value)


def test_context_with_a_missing_key_file_fails_naming_the_path(settings):
    settings.keys.kek_file.unlink()
    with pytest.raises(KeyUnavailableError, match=str(settings.keys.kek_file)):
        open_context(settings)


def test_fresh_keyring_reads_what_another_wrote(ctx, settings):
    seed(ctx.engine, ctx.keyring, clients=2)
    fresh = open_context(settings)
    try:
        values = decrypt_all(fresh.engine, fresh.keyring)
    finally:
        fresh.close()
    assert values["clients.last_name"] == ["Lovelace", "Lovelace"]
    assert values["users.totp_secret"] == ["JBSWY3DPEHPK3PXP"]


def test_wrapped_key_copied_onto_another_key_record_does_not_unwrap(ctx, settings):
    ids = seed(ctx.engine, ctx.keyring, clients=2)["clients"]
    with transaction(ctx.engine) as conn:
        rows = conn.execute(select(_keys.c.id, _keys.c.wrapped_key)
                            .where(_keys.c.client_id.in_(ids)).order_by(_keys.c.id)).all()
        conn.execute(update(_keys).where(_keys.c.id == rows[1].id)
                     .values(wrapped_key=rows[0].wrapped_key))
    fresh = Keyring(load_keks(settings.keys))
    with transaction(ctx.engine, read_only=True) as conn:
        with pytest.raises(CryptoError, match=f"data key {rows[1].id} failed to unwrap"):
            fresh.cipher(conn, rows[1].id)


def test_shredded_client_key_makes_that_client_unreadable_only(ctx, settings):
    ids = seed(ctx.engine, ctx.keyring, clients=2)["clients"]
    with transaction(ctx.engine) as conn:
        assert ctx.keyring.destroy_client_keys(conn, ids[0]) == 1
    fresh = Keyring(load_keks(settings.keys))
    with transaction(ctx.engine, read_only=True) as conn:
        with pytest.raises(KeyUnavailableError, match="no active data key"):
            fresh.client_cipher(conn, ids[0])
        (key_id,) = conn.execute(select(_keys.c.id).where(_keys.c.client_id == ids[0])).one()
        with pytest.raises(KeyUnavailableError, match="crypto-shredded"):
            fresh.cipher(conn, key_id)
        assert fresh.client_cipher(conn, ids[1]).key_id is not None
        row = conn.execute(select(_keys).where(_keys.c.id == key_id)).mappings().one()
    assert row["wrapped_key"] is None and row["state"] == KeyState.DESTROYED


def test_shredding_also_drops_the_cached_key_in_the_same_keyring(ctx):
    with transaction(ctx.engine) as conn:
        pid = add_practice(conn)
        client_id = add_client(conn, ctx.keyring, pid)
        key_id = ctx.keyring.client_cipher(conn, client_id).key_id
        ctx.keyring.destroy_client_keys(conn, client_id)
        with pytest.raises(KeyUnavailableError):
            ctx.keyring.cipher(conn, key_id)


def test_unknown_data_key_is_reported_by_id(ctx):
    missing = uuid.uuid4()
    with transaction(ctx.engine, read_only=True) as conn:
        with pytest.raises(KeyUnavailableError, match=f"data key {missing} does not exist"):
            ctx.keyring.cipher(conn, missing)


def test_system_and_blind_index_keys_are_distinct_singletons(ctx):
    with transaction(ctx.engine) as conn:
        system = ctx.keyring.system_cipher(conn).key_id
        assert ctx.keyring.system_cipher(conn).key_id == system
        ctx.keyring.blind_indexer(conn)
        purposes = conn.execute(select(_keys.c.purpose)).scalars().all()
    assert sorted(p.value for p in purposes) == ["blind_index", "system"]


def test_a_practice_wide_key_is_found_without_reading_every_clients_key(ctx):
    """active_singleton reads the few keys that belong to no client through an index;
    it ran in a sync pass's preflight on both sites and grew with the number of clients
    (a full scan of data_keys: 22-33 ms at 300k clients)."""
    from sqlalchemy import event

    from strongroom.core.crypto.keyring import active_singleton
    seed(ctx.engine, ctx.keyring, clients=3)
    statements = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))
    with transaction(ctx.engine) as conn:
        found = active_singleton(conn, KeyPurpose.BLIND_INDEX)
        event.listen(conn, "before_cursor_execute", grab)
        assert active_singleton(conn, KeyPurpose.BLIND_INDEX) == found is not None
        event.remove(conn, "before_cursor_execute", grab)
        statement, parameters = statements[-1]
        if conn.dialect.name == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "SCAN data_keys" not in plan and "ix_data_keys_client_id" in plan, plan
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
            assert "ix_data_keys_client_id" in plan, plan


@pytest.mark.parametrize("shared", [False, True], ids=["own-keyrings", "one-keyring"])
@pytest.mark.parametrize("purpose", [KeyPurpose.SYSTEM, KeyPurpose.BLIND_INDEX, KeyPurpose.AUDIT_SIGNING])
def test_a_singleton_key_first_used_by_many_at_once_is_created_exactly_once(ctx, settings, purpose, shared):
    """The daemon's threads (a login flood asking for the blind-index key, say) may all
    find the key missing at the same moment: one creates it, the rest wait and use it.
    Two keys would split the blind index (a search would miss half the rows). The
    daemon's threads share one keyring: none may use a key another has not committed."""
    one = Keyring(load_keks(settings.keys))
    use = {KeyPurpose.SYSTEM: lambda k, c: k.system_cipher(c).key_id,
           KeyPurpose.BLIND_INDEX: lambda k, c: k.blind_indexer(c).index("login_username", "x"),
           KeyPurpose.AUDIT_SIGNING: lambda k, c: k.signing_key(c).public_key().public_bytes_raw()}[purpose]
    threads_n = 8
    start = threading.Barrier(threads_n)
    results: list = []
    errors: list[BaseException] = []

    def first_use():
        keyring = one if shared else Keyring(load_keks(settings.keys))   # own cache: as after a restart
        try:
            start.wait(10)
            with transaction(ctx.engine) as conn:
                results.append(use(keyring, conn))
        except BaseException as exc:                    # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=first_use) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(set(results)) == 1 and len(results) == threads_n
    with transaction(ctx.engine, read_only=True) as conn:
        made = conn.execute(select(_keys.c.id).where(_keys.c.purpose == purpose)).all()
    assert len(made) == 1


@pytest.mark.parametrize("purpose", [KeyPurpose.SYSTEM, KeyPurpose.BLIND_INDEX])
def test_a_singleton_key_made_in_a_transaction_that_rolled_back_is_not_used_afterwards(ctx, settings, purpose):
    """The key row went with the rollback: a keyring that kept it cached would seal values
    under a key no one can open again (system), or index names under a key no other
    process has (blind index), and searches would miss them."""
    use = {KeyPurpose.SYSTEM: lambda k, c: k.system_cipher(c).key_id,
           KeyPurpose.BLIND_INDEX: lambda k, c: k.blind_indexer(c).index("login_username", "x")}[purpose]
    keyring = Keyring(load_keks(settings.keys))
    with pytest.raises(ZeroDivisionError):
        with transaction(ctx.engine) as conn:
            use(keyring, conn)
            1 / 0
    with transaction(ctx.engine) as conn:
        used = use(keyring, conn)
    with transaction(ctx.engine, read_only=True) as conn:
        (key_id,) = conn.execute(select(_keys.c.id).where(_keys.c.purpose == purpose)).scalars().all()
        if purpose == KeyPurpose.SYSTEM:
            assert keyring.system_cipher(conn).key_id == key_id
        else:
            assert Keyring(load_keks(settings.keys)).blind_indexer(conn).index("login_username", "x") == used


@pytest.mark.parametrize("purpose", [KeyPurpose.SYSTEM, KeyPurpose.BLIND_INDEX])
def test_a_singleton_key_made_by_a_transaction_is_looked_up_once_for_the_rest_of_it(ctx, settings, purpose):
    """A first bulk import on a new database makes the blind-index key inside its own
    transaction and then indexes every row in that same transaction: the key must be
    reused there, not looked up again per row (that was one scan of every data key per
    client, 203 clients/s at 100k instead of thousands). Other transactions still do
    not see it before it commits."""
    from sqlalchemy import event
    use = {KeyPurpose.SYSTEM: lambda k, c: k.system_cipher(c).key_id,
           KeyPurpose.BLIND_INDEX: lambda k, c: k.blind_indexer(c).index("login_username", "x")}[purpose]
    keyring = Keyring(load_keks(settings.keys))
    reads: list[str] = []

    def count(conn, cursor, statement, *args):
        if "data_keys" in statement and statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)
    event.listen(ctx.engine, "before_cursor_execute", count)
    try:
        with transaction(ctx.engine) as conn:
            first = use(keyring, conn)
            made = len(reads)
            assert all(use(keyring, conn) == first for _ in range(50))
            assert len(reads) == made, "the key made in this transaction is looked up again"
    finally:
        event.remove(ctx.engine, "before_cursor_execute", count)
    with transaction(ctx.engine) as conn:
        assert use(keyring, conn) == first


def test_keyring_needs_a_kek():
    with pytest.raises(KeyUnavailableError):
        Keyring([])
