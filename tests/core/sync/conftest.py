"""Sites for sync tests: a practice's first site on each engine, and sites that joined it."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from strongroom.core import audit
from strongroom.core.crypto.kek import load_keks
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.models import Client
from strongroom.core.principal import SYSTEM, Principal
from strongroom.core.sync import join as join_mod
from strongroom.core.sync.passes import PassOptions, Side, run_pass
from strongroom.core.sync.peers import add_peer
from tests.conftest import sqlite_copy

WRITER = Principal("test", frozenset({"*"}))


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
    from tests.core.conftest import seed_clients
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


__all__ = ["Site", "WRITER", "SYSTEM", "client_ids", "open_site", "Path"]
