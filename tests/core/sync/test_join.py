"""A new site joins a practice (`strongroom init --join`): it shares the practice's KEK,
blind-index and system keys, and nothing is left behind when joining is refused."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from strongroom.core.crypto.kek import generate_kek, write_kek_file
from strongroom.core.datadir import init_data_dir, open_data_dir
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import DataKey, KeyPurpose
from strongroom.core.errors import KeyUnavailableError, ValidationError
from strongroom.core.jobs import sync as sync_job
from strongroom.core.principal import Principal
from strongroom.core.repository.clients import create_client, find_clients
from strongroom.core.repository.practices import list_practices
from tests.core.conftest import WRITER

ADMIN = Principal("user:admin", frozenset({"*"}))


def _blind_key(ctx):
    keys = DataKey.__table__
    with transaction(ctx.engine, read_only=True) as conn:
        return conn.execute(select(keys.c.id).where(keys.c.purpose == KeyPurpose.BLIND_INDEX)).scalar()


def test_a_site_joins_a_practice_that_has_no_clients_yet_and_searches_what_arrives(tmp_path):
    first = init_data_dir(tmp_path / "first", practice_name="Riverside", principal=ADMIN)
    second = init_data_dir(tmp_path / "second", practice_name="ignored", principal=ADMIN,
                           join_url=first.database.url, kek_file=first.keys.kek_file)
    a, b = open_data_dir(first.data_dir), open_data_dir(second.data_dir)
    try:
        assert _blind_key(a) is not None and _blind_key(a) == _blind_key(b)
        with transaction(a.engine) as conn:
            practice = list_practices(conn)[0]["id"]
            create_client(conn, a.keyring, WRITER, practice,
                          {"first_name": "Avery", "last_name": "Quinn", "email": "avery.quinn@example.org"})
        sync_job.run(b, {}, lambda *args: None)
        with transaction(b.engine) as conn:
            (found,) = find_clients(conn, b.keyring, WRITER, email="avery.quinn@example.org")
        assert found["last_name"] == "Quinn"
    finally:
        a.close()
        b.close()


def test_joining_with_another_key_file_is_refused_and_leaves_nothing(tmp_path):
    first = init_data_dir(tmp_path / "first", practice_name="Riverside", principal=ADMIN)
    stranger = tmp_path / "stranger.key"
    write_kek_file(stranger, generate_kek())
    with pytest.raises(KeyUnavailableError, match="KEK"):
        init_data_dir(tmp_path / "second", practice_name="x", principal=ADMIN,
                      join_url=first.database.url, kek_file=stranger)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "stranger.key"]


def test_joining_over_an_unencrypted_remote_postgresql_is_refused_without_the_password(tmp_path):
    first = init_data_dir(tmp_path / "first", practice_name="Riverside", principal=ADMIN)
    with pytest.raises(ValidationError) as refused:
        init_data_dir(tmp_path / "second", practice_name="x", principal=ADMIN,
                      join_url="postgresql://sync:s3cret@db.example.org/central", kek_file=first.keys.kek_file)
    assert "sslmode=verify-full" in str(refused.value) and "s3cret" not in str(refused.value)
    assert not (tmp_path / "second").exists()
