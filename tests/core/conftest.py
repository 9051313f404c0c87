"""Seed helpers for core tests: synthetic clients, a backup target per test, reading them back,
sync sites, and client files stored and read back.

Shared here (not imported from another test module) so a test module is only ever a
specification, and moving one never breaks another.
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from sqlalchemy import Engine, select

from strongroom.core import audit
from strongroom.core.crypto.kek import load_keks
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.models import Client, ClientFile
from strongroom.core.files import content
from strongroom.core.files.repository import add_file, open_file
from strongroom.core.files.store import open_files_target
from strongroom.core.sync import join as join_mod
from strongroom.core.sync.passes import PassOptions, Side, run_pass
from strongroom.core.sync.peers import add_peer
from strongroom.core.demo import client_records
from strongroom.core.principal import SYSTEM, Principal
from strongroom.core.repository.clients import insert_clients, list_clients
from strongroom.core.repository.practices import create_practice
from strongroom.core.repository.sessions import create_session

READER = Principal("test", frozenset({"table:clients:read", "table:therapy_sessions:read", "phi:read"}))
WRITER = Principal("test", frozenset({"*"}))


def seed_clients(ctx, n=40):
    """A practice with `n` synthetic clients, ten of them with a session; their ids."""
    created = []
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Backup Practice")
        insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(n), created=created)
        for cid in created[:10]:
            create_session(conn, ctx.keyring, SYSTEM, {"client_id": cid, "notes": "tab\tnewline\nbackslash\\",
                                                       "starts_at": datetime(2026, 1, 5, 9, tzinfo=timezone.utc)})
    return created


def with_backup_target(ctx, tmp_path):
    """Point the default backup configuration at a repository under `tmp_path`."""
    target = tmp_path / "repo"
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(update={"target": str(target)})})
    return target


def clients_of(engine, keyring):
    """Every client of a database, decrypted (through a sealed engine: reading PHI is audited)."""
    audit.seal_with(engine, keyring)    # reading PHI is audited: sealed, as a data directory would
    with transaction(engine) as conn:
        return sorted(list_clients(conn, keyring, READER, limit=10_000), key=lambda r: r["id"])


# --- sync sites ----------------------------------------------------------------------
@dataclass
class Site:
    name: str
    url: str
    engine: Engine
    keyring: Keyring
    peers: dict[str, uuid.UUID]

    def side(self) -> Side:
        return Side(self.engine, self.keyring, label=self.name)

    def sync(self, other: "Site", **options) -> dict:
        """One pass run from this site with `other` (a fresh keyring for the peer, as the job makes)."""
        peer_id = self.peers.get(other.name)
        if peer_id is None:
            with transaction(self.engine) as conn:
                peer_id = self.peers[other.name] = add_peer(conn, other.name, other.url)
        remote = make_engine(other.url)
        remote_keyring = Keyring(self.keyring_keks)
        audit.seal_with(remote, remote_keyring)
        try:
            return run_pass(self.side(), Side(remote, remote_keyring, label=other.name), peer_id,
                            PassOptions(**options))
        finally:
            remote.dispose()

    @property
    def keyring_keks(self):
        return list(self._keks)


def open_site(name: str, url: str, keks) -> Site:
    engine = make_engine(url)
    keyring = Keyring(keks)
    audit.seal_with(engine, keyring)
    site = Site(name, url, engine, keyring, {})
    site._keks = keks
    return site


@pytest.fixture
def first_site(ctx):
    """The practice's first site (each engine): a practice, 40 clients, 10 with a session."""
    seed_clients(ctx, 12)
    keks = load_keks(ctx.settings.keys)
    site = open_site("central", ctx.settings.database.url, keks)
    yield site
    site.engine.dispose()


@pytest.fixture
def join_site(first_site, sqlite_template, tmp_path):
    """Make SQLite sites that joined `first_site` (as `init --join` does)."""
    made: list[Site] = []

    def make(name: str, from_site: Site | None = None) -> Site:
        source = from_site or first_site
        from tests.conftest import sqlite_copy
        url = sqlite_copy(sqlite_template, tmp_path / f"{name}.db")
        site = open_site(name, url, source._keks)
        with transaction(site.engine) as conn:
            site.keyring.signing_key(conn)
            site.peers[source.name] = join_mod.join(conn, site.keyring, peer_name=source.name, peer_url=source.url)
        made.append(site)
        return site
    yield make
    for site in made:
        site.engine.dispose()


def client_ids(site: Site) -> list[uuid.UUID]:
    with transaction(site.engine, read_only=True) as conn:
        return list(conn.execute(select(Client.__table__.c.id).order_by(Client.__table__.c.id)).scalars())


# --- client files: stored and read back through the repository, as a user holding every permission

ALL = Principal("user:tester", frozenset({"*"}))
FILE_NAME = "intake form Zebediah-Quorn.pdf"   # PHI-shaped: it must never appear in plaintext


def _pieces(data: bytes, size: int = 300_000):
    """DATA as an upload arrives: in pieces that do not line up with content chunks."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def store_file(ctx, client_id, data: bytes, *, name=FILE_NAME, principal=ALL, content_type="application/pdf",
               **kw) -> dict:
    """Add DATA as a file of the client (in the files store the settings name); the new row."""
    target = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        return add_file(conn, ctx.keyring, principal, target, ctx.settings.files, client_id, name=name,
                        content_type=content_type, size=len(data), content=_pieces(data), **kw)


def fetch_file(ctx, file_id, principal=ALL) -> bytes:
    """A stored file's whole content, decrypted and verified."""
    target = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        download = open_file(conn, ctx.keyring, principal, target, file_id)
        return b"".join(download.chunks)


def file_bytes(n: int, seed: int = 1) -> bytes:
    """Half repetitive (compresses), half random (does not), with a marker to grep for."""
    rnd = os.urandom(n // 2)
    unit = b"MARKER-PLAINTEXT-%d " % seed
    text = unit * ((n - len(rnd)) // len(unit) + 1)
    data = text[: n - len(rnd)] + rnd
    assert len(data) == n
    return data


def file_objects(ctx, file_id) -> list:
    """The chunk objects of a file, in order (through its manifest), then the manifest."""
    target = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        row = conn.execute(select(ClientFile.__table__).where(ClientFile.__table__.c.id == file_id)).mappings().one()
        manifest = content.read_manifest(target, lambda k: ctx.keyring.cipher(conn, k), file_id, row["storage_key"])
    root = ctx.settings.data_dir / "files"
    return [root / key for key in manifest["chunks"]] + [root / row["storage_key"]]
