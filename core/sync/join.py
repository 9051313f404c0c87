"""A new site joins a practice: `strongroom init --join URL --kek-file FILE`.

Sites of one practice share the KEK (the new site's key file comes from the practice's
recovery kit: `strongroom keys recover`), the blind-index key (or searches by email or
name would find nothing on the rows that arrive) and the system key, and they hold the
same practice and staff accounts. Joining copies those from the peer, as stored
(wrapped keys stay wrapped), after proving the key file opens the peer's keys; clients
and sessions then arrive with the first sync pass. The new site keeps its own site id
and its own audit chain (its own audit signing key).
"""
from __future__ import annotations

import uuid

from sqlalchemy import Connection, Engine, insert, select

from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db import migrate
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import DataKey, KeyPurpose, KeyState, Practice, User
from strongroom.core.errors import ConflictError, KeyUnavailableError
from strongroom.core.sync import keys as key_sync
from strongroom.core.sync.peers import add_peer
from strongroom.core.sync.site import Clock, site_id
from strongroom.core.sync.stamp import read_with_meta, save_meta, stamp_rows
from strongroom.core.sync.tables import by_name

_keys = DataKey.__table__
_COPIED_KEYS = (KeyPurpose.CLIENT, KeyPurpose.SYSTEM, KeyPurpose.BLIND_INDEX)


def _check_keys(conn: Connection, keyring: Keyring) -> None:
    """The peer's live keys are wrapped by our KEK (its audit signing key exists from its
    `init`), and its blind-index key opens. A site that has not needed its blind-index
    or system key yet (no client, no 2FA) gets them now, so both sites share them."""
    if not conn.execute(select(_keys.c.id).where(_keys.c.state != KeyState.DESTROYED).limit(1)).first():
        raise ConflictError("join: the peer holds no keys; it is not an initialised Strongroom site")
    foreign = key_sync.foreign_keks(conn, keyring.kek_ids())
    if foreign:
        raise KeyUnavailableError(f"join: the peer's keys are wrapped by KEK {', '.join(foreign)}, the key file "
                                  f"given holds KEK {keyring.kek_id}; use the practice's key file "
                                  "(strongroom keys recover KIT --out FILE)")
    peer_keys = Keyring([keyring.primary])     # its own cache: these are the peer's key records
    peer_keys.blind_indexer(conn)
    peer_keys.system_cipher(conn)
    record = conn.execute(select(_keys).where(_keys.c.purpose == KeyPurpose.BLIND_INDEX,
                                              _keys.c.state == KeyState.ACTIVE)).mappings().first()
    keyring.unwrap(record["id"], record["purpose"], record["wrapped_key"], record["kek_id"])


def copy_from(conn: Connection, keyring: Keyring, peer_engine: Engine) -> dict[str, int]:
    """Copy the practice, its accounts and its keys from the peer into this (empty)
    database, in the caller's transaction. Returns counts."""
    if migrate.current_revision(peer_engine) != migrate.head_revision():
        raise ConflictError(f"join: the peer's schema is at revision {migrate.current_revision(peer_engine)}, "
                            f"this release's at {migrate.head_revision()}; upgrade the peer first")
    with transaction(peer_engine) as peer:
        _check_keys(peer, keyring)
        # The practice rows arrive with their version metadata, stamped there first, so
        # this site holds the peer's version of them rather than a new edit of its own.
        spec = by_name("practices")
        practices, metas = read_with_meta(peer, spec)
        clock = Clock(peer)
        stamp_rows(peer, clock, spec, practices, metas)
        clock.save()
        peer_site = site_id(peer)
        users = [dict(r) for r in peer.execute(select(User.__table__)).mappings()]
        keys = [dict(r) for r in peer.execute(select(_keys).where(_keys.c.purpose.in_(_COPIED_KEYS))).mappings()]
    if conn.execute(select(Practice.__table__.c.id)).first() is not None:
        raise ConflictError("join: this database already holds a practice; a site joins from an empty database")
    if practices:
        conn.execute(insert(Practice.__table__), practices)
        for practice in practices:
            meta = metas[practice["id"]]
            meta.stored, meta.source, meta.version = False, peer_site, practice["sync_version"]
            save_meta(conn, "practices", practice["id"], meta)
    if users:
        conn.execute(insert(User.__table__), users)
    for record in keys:
        conn.execute(insert(_keys), [{c: record[c] for c in key_sync.COLUMNS}])
    return {"practices": len(practices), "users": len(users), "keys": len(keys)}


def join(conn: Connection, keyring: Keyring, *, peer_name: str, peer_url: str) -> uuid.UUID:
    """Join the practice at `peer_url` and register it as peer `peer_name`."""
    from strongroom.core.db.engine import make_engine
    from strongroom.core.sync.peers import check_url

    check_url(peer_name, peer_url)
    engine = make_engine(peer_url)
    try:
        copy_from(conn, keyring, engine)
    finally:
        engine.dispose()
    return add_peer(conn, peer_name, peer_url)
