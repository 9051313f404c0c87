"""The key bag: a repository's one mutable object, holding the data keys its snapshots need.

Why. A client is erased by destroying its data key (crypto-shredding). Snapshots are
immutable (on S3 possibly Object-Locked for years), so a snapshot that carried the
client's KEK-wrapped key would give the client back to anyone holding the KEK or the
recovery kit. Snapshots therefore carry `data_keys` with `wrapped_key` NULL
(copytext.REDACTED), and the keys live here instead, in `keys/bag`, rewritten:

- by every backup, before its manifest (a manifest never exists without its keys):
  the keys its rows need, merged with the older keys kept snapshots still need;
- at once by every erasure (core/retention/certificate.py), which drops the client's
  keys and records their ids under `erased`;
- by every prune, which drops keys no remaining snapshot needs (a DEK retired by
  `keys rotate-deks` leaves the bag once the last snapshot taken before the rotation
  is forgotten).

Every rewrite runs under the retention lock (the one an erasure holds while it
destroys keys; on SQLite the single writer) and re-reads which keys the database has
erased, so a backup that read its keys before an erasure committed cannot put an erased
key back, whatever the interleaving. The object is replaced with `Target.replace`: a
new version first, then every older version deleted (locally the rename drops the old
file), so a failed write leaves the previous bag whole and loses nothing.

Format: version byte | 96-bit nonce | AES-256-GCM(JSON), under a key derived from the
repository's backup key (HKDF info "strongroom-backup-keybag"), the repository id as
associated data. Inside, each key is its raw 256-bit secret: the bag is opened through
the repository's config.json (KEK-wrapped backup key), so a KEK rotation rewraps
nothing here, and disaster recovery needs only the KEK or the recovery kit, as before.

Which keys a kept snapshot needs. A key's use is one interval of time: created,
active, perhaps retired and re-encrypted away, never used again. Each entry records
the first and last snapshot times that needed it, and the bag lists the times of the
snapshots in the repository; an entry stays while some listed time falls inside its
interval. A snapshot needs the keys active at its time and retired keys a row still
uses (rotation.retired_unused names the others).
"""
from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Engine, bindparam, select, update

from strongroom.core.backup.manifest import canonical_json
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import DataKey, KeyPurpose, KeyState
from strongroom.core.db.types import utcnow
from strongroom.core.errors import IntegrityError, NotFoundError
from strongroom.core.retention import lock as retention_lock

BAG_KEY = "keys/bag"
FORMAT = 1
_VERSION = bytes([1])
_NONCE = 12
_AAD = b"strongroom-backup-keybag\0"

_keys = DataKey.__table__


@dataclass(frozen=True)
class BagKey:
    """One data key in the bag: its record's identity, the raw secret and the interval
    of snapshot times that needed it (ISO 8601, UTC)."""

    key_id: uuid.UUID
    purpose: str
    client_id: uuid.UUID | None
    version: int
    secret: bytes = field(repr=False)
    first_needed: str
    last_needed: str

    def needed_at(self, times: Iterable[str]) -> bool:
        return any(self.first_needed <= t <= self.last_needed for t in times)


@dataclass(frozen=True)
class KeyBag:
    """The decoded bag. `snapshots`: snapshot id -> created_at of each snapshot the
    repository holds; `erased`: key id -> when it was destroyed (ids are not secret,
    and they let a restore of a snapshot written before the bag existed wipe them too)."""

    repository_id: uuid.UUID
    generation: int
    written_at: str
    keys: dict[uuid.UUID, BagKey]
    erased: dict[uuid.UUID, str]
    snapshots: dict[str, str]

    @classmethod
    def empty(cls, repository_id: uuid.UUID) -> KeyBag:
        return cls(repository_id, 0, "", {}, {}, {})

    def kept(self) -> KeyBag:
        """Without the keys no listed snapshot needs."""
        times = list(self.snapshots.values())
        return replace(self, keys={k: v for k, v in self.keys.items() if v.needed_at(times)})

    def without(self, erased: dict[uuid.UUID, str]) -> KeyBag:
        """Without the erased keys, which are recorded under `erased` from now on."""
        return replace(self, keys={k: v for k, v in self.keys.items() if k not in erased},
                       erased={**self.erased, **erased})


# =====================================================================================
# encoding
# =====================================================================================

def _cipher(repo) -> AESGCM:  # noqa: ANN001 - a Repository (import cycle otherwise)
    return AESGCM(repo.keybag_key())


def _encode_key(k: BagKey) -> dict[str, Any]:
    return {"id": str(k.key_id), "purpose": k.purpose, "client_id": str(k.client_id) if k.client_id else None,
            "version": k.version, "key": base64.b64encode(k.secret).decode(), "first_needed": k.first_needed,
            "last_needed": k.last_needed}


def _sorted_keys(bag: KeyBag) -> list[BagKey]:
    return sorted(bag.keys.values(), key=lambda k: k.key_id)


def _encode(bag: KeyBag, keys: list | None = None) -> dict[str, Any]:
    return {
        "format": FORMAT, "repository_id": str(bag.repository_id), "generation": bag.generation,
        "written_at": bag.written_at,
        "keys": [_encode_key(k) for k in _sorted_keys(bag)] if keys is None else keys,
        "erased": {str(k): at for k, at in sorted(bag.erased.items())},
        "snapshots": dict(sorted(bag.snapshots.items())),
    }


_KEYS_MARK = b'"keys":[]'


def _plain_pieces(bag: KeyBag) -> Iterator[bytes]:
    """canonical_json(_encode(bag)), a piece at a time: the document around the key list
    once, then each key's object. The bag of a practice holds a key per client, so the
    whole document as Python objects and as text, side by side, was ten times the
    ciphertext (measured: about 100 MB at 100k clients, the peak of a backup)."""
    frame = canonical_json(_encode(bag, keys=[]))
    head, tail = frame.split(_KEYS_MARK)     # ids and ISO times around it cannot contain it
    yield head + b'"keys":['
    for i, key in enumerate(_sorted_keys(bag)):
        yield (b"," if i else b"") + canonical_json(_encode_key(key))
    yield b"]" + tail


def _decode(document: dict[str, Any]) -> KeyBag:
    keys = {}
    for item in document["keys"]:
        key = BagKey(uuid.UUID(item["id"]), str(item["purpose"]),
                     uuid.UUID(item["client_id"]) if item["client_id"] else None, int(item["version"]),
                     base64.b64decode(item["key"], validate=True), str(item["first_needed"]),
                     str(item["last_needed"]))
        if len(key.secret) != 32:
            raise ValueError("key length")
        keys[key.key_id] = key
    return KeyBag(uuid.UUID(document["repository_id"]), int(document["generation"]),
                  str(document["written_at"]), keys,
                  {uuid.UUID(k): str(v) for k, v in document["erased"].items()},
                  {str(k): str(v) for k, v in document["snapshots"].items()})


def seal(repo, bag: KeyBag) -> bytes:  # noqa: ANN001
    """Version, nonce, AES-256-GCM of the canonical document and its tag: what
    `AESGCM.encrypt` writes, produced by the streaming GCM encryptor a piece at a time."""
    nonce = os.urandom(_NONCE)
    encryptor = Cipher(algorithms.AES(repo.keybag_key()), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(_AAD + _VERSION + repo.id.bytes)
    out = bytearray(_VERSION + nonce)
    for piece in _plain_pieces(bag):
        out += encryptor.update(piece)
    out += encryptor.finalize()
    out += encryptor.tag
    return bytes(out)


def read(repo) -> KeyBag | None:  # noqa: ANN001
    """The repository's current bag; None when none was written yet (a repository of a
    release before the bag: its snapshots still carry their keys). A bag that fails
    authentication or does not parse raises IntegrityError naming the object."""
    try:
        data = repo.target.get(BAG_KEY)
    except NotFoundError:
        return None
    where = f"{repo.target.describe()}: {BAG_KEY}"
    if len(data) < 1 + _NONCE + 16 or data[:1] != _VERSION:
        raise IntegrityError(f"{where} is truncated or of an unknown format (corrupted or tampered)")
    try:
        plain = _cipher(repo).decrypt(data[1:1 + _NONCE], data[1 + _NONCE:], _AAD + _VERSION + repo.id.bytes)
    except InvalidTag:
        raise IntegrityError(f"{where} failed authentication (corrupted, tampered, or from "
                             "another repository)") from None
    try:
        document = json.loads(plain)
        if document.get("format") != FORMAT:
            raise ValueError("format")
        bag = _decode(document)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise IntegrityError(f"{where} is authentic but malformed (a writer bug)") from None
    if bag.repository_id != repo.id:
        raise IntegrityError(f"{where} belongs to another repository")
    return bag


# =====================================================================================
# what the database says
# =====================================================================================

def erased_keys(conn: Connection) -> dict[uuid.UUID, str]:
    """Client keys destroyed by an erasure: every key of the client is destroyed (a DEK
    retirement never destroys a client's active key, so this tells them apart)."""
    live_clients = select(_keys.c.client_id).where(_keys.c.client_id.is_not(None),
                                                   _keys.c.state != KeyState.DESTROYED)
    rows = conn.execute(select(_keys.c.id, _keys.c.destroyed_at).where(
        _keys.c.client_id.is_not(None), _keys.c.state == KeyState.DESTROYED,
        _keys.c.client_id.not_in(live_clients))).all()
    return {r.id: (r.destroyed_at or utcnow()).isoformat() for r in rows}


def needed_rows(conn: Connection) -> list[Any]:
    """The key records a snapshot of `conn`'s database needs: every key not destroyed,
    except retired keys no row uses any more."""
    from strongroom.core.crypto.key_status import retired_unused

    unused = {key_id for key_id, _ in retired_unused(conn)}
    rows = conn.execute(select(_keys.c.id, _keys.c.purpose, _keys.c.client_id, _keys.c.version,
                               _keys.c.wrapped_key, _keys.c.kek_id, _keys.c.state)
                        .where(_keys.c.state != KeyState.DESTROYED, _keys.c.wrapped_key.is_not(None))).all()
    return [r for r in rows if r.id not in unused]


def live_keys(conn: Connection, keyring: Keyring, when: datetime) -> dict[uuid.UUID, BagKey]:
    """The keys a snapshot taken now (inside `conn`'s read snapshot) needs, unwrapped."""
    at = _at(when)
    found = {}
    for row in needed_rows(conn):
        purpose = KeyPurpose(row.purpose)
        secret = keyring.unwrap(row.id, purpose, row.wrapped_key, row.kek_id)
        found[row.id] = BagKey(row.id, purpose.value, row.client_id, row.version, secret, at, at)
    return found


def _at(when: datetime) -> str:
    """A snapshot time as compared in the bag: UTC, fixed width, so strings sort as times."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")


# =====================================================================================
# rewriting
# =====================================================================================

def _write_lock(conn: Connection) -> None:
    """The retention lock, which an erasure holds while it destroys keys: a bag
    rewrite sees either none or all of an erasure. SQLite: the IMMEDIATE transaction."""
    retention_lock(conn)


def rewrite(engine: Engine, repo, change: Callable[[KeyBag], KeyBag]) -> KeyBag:  # noqa: ANN001
    """Read the bag, apply `change`, drop every key the database has erased, write it
    back (Target.replace), all under the retention lock. Returns what was written."""
    with transaction(engine) as conn:
        _write_lock(conn)
        erased = erased_keys(conn)
        current = read(repo) or KeyBag.empty(repo.id)
        changed = change(current).without(erased)
        written = replace(changed, generation=current.generation + 1, written_at=utcnow().isoformat())
        repo.target.replace(BAG_KEY, seal(repo, written))
    return written


def after_backup(engine: Engine, repo, live: dict[uuid.UUID, BagKey], snapshot_id: uuid.UUID,  # noqa: ANN001
                 created_at: datetime) -> KeyBag:
    """Before a snapshot's manifest is written: its keys in, its time listed, keys no
    listed snapshot needs out. An older entry keeps its first time."""
    at = _at(created_at)

    def change(bag: KeyBag) -> KeyBag:
        keys = dict(bag.keys)
        for key_id, key in live.items():
            old = keys.get(key_id)
            keys[key_id] = replace(key, first_needed=min(old.first_needed, at) if old else at,
                                   last_needed=max(old.last_needed, at) if old else at)
        return replace(bag, keys=keys, snapshots={**bag.snapshots, str(snapshot_id): at}).kept()
    return rewrite(engine, repo, change)


def after_prune(engine: Engine, repo, snapshots: dict[uuid.UUID, datetime]) -> KeyBag:  # noqa: ANN001
    """After a prune: the snapshots that remain, and only the keys they need."""
    listed = {str(k): _at(v) for k, v in snapshots.items()}
    return rewrite(engine, repo, lambda bag: replace(bag, snapshots=listed).kept())


def after_erasure(engine: Engine, repo) -> KeyBag:  # noqa: ANN001
    """At once after an erasure: every erased key out (rewrite drops them)."""
    return rewrite(engine, repo, lambda bag: bag)


# =====================================================================================
# restore
# =====================================================================================

@dataclass(frozen=True)
class Filled:
    """What a restore did with the restored `data_keys`: keys rewrapped from the bag,
    keys left unreadable because they were erased, and keys the snapshot needs that the
    bag lacks (a damaged or lost bag: reported, never silent)."""

    restored: int
    erased: int
    missing: int

    def as_dict(self) -> dict[str, int]:
        return {"restored": self.restored, "erased": self.erased, "missing": self.missing}


def fill(conn: Connection, repo, keyring: Keyring, *, in_bag_format: bool) -> Filled:  # noqa: ANN001
    """Give the restored database (`conn`, its load transaction, change tracking held)
    its data keys from the repository's current bag, wrapped by `keyring`'s KEK.

    A snapshot in the bag format has no wrapped key at all; one written before the bag
    existed carries its own, and only the erased ones are wiped. A key the bag does not
    hold stays without a wrapped key: the keyring then treats it as destroyed."""
    bag = read(repo)
    if bag is None:
        if in_bag_format:
            raise IntegrityError(f"{repo.target.describe()}: {BAG_KEY} is missing: the snapshot's data "
                                 "keys cannot be restored (restore the object from a copy of the target)")
        return Filled(0, 0, 0)
    erased = list(bag.erased)
    clients: dict[uuid.UUID, str] = {}        # erased client -> when its keys were destroyed
    for start in range(0, len(erased), 500):
        part = erased[start:start + 500]
        conn.execute(update(_keys).where(_keys.c.id.in_(part)).values(wrapped_key=None))
        for key_id, client_id in conn.execute(select(_keys.c.id, _keys.c.client_id).where(
                _keys.c.id.in_(part), _keys.c.client_id.is_not(None))):
            clients[client_id] = max(clients.get(client_id, ""), bag.erased[key_id])
    _as_the_erasure_left_them(conn, keyring, clients)
    restored = 0
    if in_bag_format:
        present = set(conn.execute(select(_keys.c.id)).scalars())
        rows = [{"b_id": key.key_id, "b_wrapped": keyring.wrap(key.secret, key.key_id, KeyPurpose(key.purpose)),
                 "b_kek": keyring.kek_id} for key in bag.keys.values() if key.key_id in present]
        if rows:
            conn.execute(update(_keys).where(_keys.c.id == bindparam("b_id"))
                         .values(wrapped_key=bindparam("b_wrapped"), kek_id=bindparam("b_kek")), rows)
        restored = len(rows)
    missing = sum(1 for row in needed_ids_without_key(conn) if row not in bag.erased)
    return Filled(restored, len(set(erased) & _ids(conn)), missing)


def _as_the_erasure_left_them(conn: Connection, keyring: Keyring, clients: dict[uuid.UUID, str]) -> None:
    """A client erased after the snapshot comes back as the erasure left it: tombstoned
    with its sessions and files, its keys destroyed (checksums and change versions kept
    right), not as live rows nobody can read. `clients`: client id -> when erased."""
    from strongroom.core.retention.erasure import erase_client   # erasure imports this module

    for client_id, when in clients.items():
        erase_client(conn, keyring, client_id, now=datetime.fromisoformat(when))


def _ids(conn: Connection) -> set[uuid.UUID]:
    return set(conn.execute(select(_keys.c.id)).scalars())


def needed_ids_without_key(conn: Connection) -> list[uuid.UUID]:
    """Keys the restored rows need (active, or retired and used) that have no wrapped key."""
    from strongroom.core.crypto.key_status import retired_unused

    unused = {key_id for key_id, _ in retired_unused(conn)}
    ids = conn.execute(select(_keys.c.id).where(_keys.c.state != KeyState.DESTROYED,
                                                _keys.c.wrapped_key.is_(None))).scalars()
    return [i for i in ids if i not in unused]
