"""The audit log: an append-only hash chain in `audit_logs`.

Each row's `hash` is SHA-256 over a canonical encoding of its own fields and the
previous row's hash (`prev_hash`), so changing, inserting or deleting any row breaks
every link after it; `verify` names the first broken row. The encoding is each field as
`<length>:<text>` (NULL as `~`) in a fixed order; PostgreSQL's trigger function
strongroom_audit_append (migration 0002) computes exactly the same thing, so rows that
triggers write for changes made behind the application's back verify like any other.

Appends are serialised: on PostgreSQL by a transaction-level advisory lock shared with
the triggers, on SQLite by the write lock every transaction takes (BEGIN IMMEDIATE).

Seals. A plain hash chain proves nothing against whoever can write the database: they
can recompute every hash. So each row Strongroom writes also carries `mac`, an
HMAC-SHA256 of its hash under a key the database does not hold (derived from the
audit signing key's seed, which only the KEK unwraps). A forged or rewritten row cannot
get a valid seal. Rows written before the seal existed (an upgraded database) are
accepted as they are, protected by the chain into the first sealed row; after that,
every row must be sealed, except those the PostgreSQL trigger writes for changes made
outside Strongroom (actor `db:<role>`): the database has no key to seal them with, so
`verify` lists them as resting on the database's word alone.

Cutting the newest rows leaves a shorter chain that still verifies; only a record of
the head kept elsewhere catches it. `checkpoint` signs the head (its own entry
included); core/checkpoints.py keeps the newest outside the database and
`verify_checkpoint` names the rows missing after it.

Never put PHI in `details`: name tables, columns, row ids and counts, not values.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import uuid
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, Engine, func, insert, select, text

from strongroom.core.db.models import AuditLog, DataKey, KeyPurpose, KeyState
from strongroom.core.db.pg import AUDIT_LOCK_KEY
from strongroom.core.db.types import utcnow
from strongroom.core.errors import IntegrityError

GENESIS = "0" * 64
TRIGGER_ACTOR_PREFIX = "db:"   # rows the PostgreSQL trigger writes (migration 0002)
MAX_LISTED = 50
_log = AuditLog.__table__
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

ACTIONS = frozenset({
    "CREATE", "READ", "UPDATE", "DELETE", "LOGIN", "LOGOUT", "LOGIN_FAILED", "EXPORT",
    "BACKUP", "RESTORE", "VERIFY", "GRANT", "REVOKE", "LOCK", "UNLOCK", "KEY_ROTATE",
    "KEY_DESTROY", "KEY_EXPORT", "CONFIG", "SYNC", "RETENTION", "ERASURE", "INTEGRITY",
    "SECURITY",
    # Records retention (strongroom.core.retention): policies, archive and delete runs,
    # legal holds, four-eyes erasure.
    "RETENTION_POLICY", "RETENTION_ARCHIVE", "RETENTION_DELETE", "LEGAL_HOLD",
    "LEGAL_HOLD_RELEASE", "ERASURE_REQUEST", "ERASURE_APPROVE", "ERASURE_REJECT", "ERASURE_EXECUTE",
    "ERASURE_CERTIFICATE",
})


def canonical_json(value: dict) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _field(value: str | None) -> str:
    return "~" if value is None else f"{len(value)}:{value}"


def epoch_micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def record_hash(row: dict) -> str:
    """The chain hash of one audit row (a mapping of its columns)."""
    parts = [
        str(row["id"]), str(epoch_micros(row["occurred_at"])), row["actor"], row["session_id"],
        row["action"], row["table_name"], row["record_id"], row["ip_address"],
        row["user_agent"], row["outcome"], row["details"], row["prev_hash"],
    ]
    return hashlib.sha256("".join(_field(p) for p in parts).encode()).hexdigest()


# --- seals ----------------------------------------------------------------------------

class UnsealableEntry(IntegrityError):
    """An entry was to be appended after sealing began, by a process without the key."""


# Keyed by the engine's pool, which the engine's execution_options() copies share.
_SEALERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()    # Pool -> Keyring
_CHAIN_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Keyring -> bytes


def seal_with(engine: Engine, keyring) -> None:
    """Entries appended through `engine` are sealed with `keyring`'s chain key (once the
    audit signing key exists: `ensure_chain_key`). open_context calls this."""
    _SEALERS[engine.pool] = keyring


def signing_key_exists(conn: Connection) -> bool:
    keys = DataKey.__table__
    return conn.execute(select(keys.c.id).where(keys.c.purpose == KeyPurpose.AUDIT_SIGNING,
                                                keys.c.state == KeyState.ACTIVE).limit(1)).first() is not None


def chain_key(conn: Connection, keyring) -> bytes | None:
    """The HMAC key sealing entries, or None before the audit signing key exists."""
    cached = _CHAIN_KEYS.get(keyring)
    if cached is not None:
        return cached
    if not signing_key_exists(conn):
        return None
    seed = keyring.signing_key(conn).private_bytes_raw()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"strongroom-audit-chain-mac").derive(seed)
    _CHAIN_KEYS[keyring] = key
    return key


def ensure_chain_key(engine: Engine, keyring) -> None:
    """Create the audit signing key (and so the chain key) if this database has none yet,
    in a transaction of its own, so every later entry is sealed. `init` and the daemon's
    start call it; an upgraded database starts sealing here."""
    with engine.begin() as conn:
        if not signing_key_exists(conn):
            keyring.signing_key(conn)


def seal(key: bytes, row_hash: str) -> str:
    return hmac.new(key, row_hash.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Entry:
    id: int
    occurred_at: datetime
    actor: str
    action: str
    table_name: str | None
    record_id: str | None
    outcome: str
    details: dict
    hash: str


def append(conn: Connection, *, actor: str, action: str, table_name: str | None = None,
           record_id: object | None = None, outcome: str = "success",
           details: dict | None = None, session_id: str | None = None,
           ip_address: str | None = None, user_agent: str | None = None) -> Entry:
    """Append one entry inside the caller's transaction (it commits or rolls back with it)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK_KEY})
    prev = conn.execute(select(_log.c.id, _log.c.hash, _log.c.mac).order_by(_log.c.id.desc()).limit(1)).first()
    if conn.dialect.name == "postgresql":
        new_id = conn.execute(text("SELECT nextval(pg_get_serial_sequence('audit_logs', 'id'))")).scalar()
        if prev is not None and new_id <= prev.id:
            # A row was inserted with an explicit id behind the sequence's back (tampering,
            # or a restore): continue after it, so the log still takes entries and verify
            # can still record its own verdict.
            new_id = conn.execute(text("SELECT setval(pg_get_serial_sequence('audit_logs', 'id'), :v)"),
                                  {"v": prev.id + 1}).scalar()
    else:
        new_id = (prev.id if prev else 0) + 1
    row = {
        "id": new_id, "occurred_at": utcnow(), "actor": actor[:120], "session_id": session_id,
        "action": action, "table_name": table_name,
        "record_id": None if record_id is None else str(record_id),
        "ip_address": ip_address, "user_agent": None if user_agent is None else user_agent[:200],
        "outcome": outcome, "details": canonical_json(details or {}),
        "prev_hash": prev.hash if prev else GENESIS,
    }
    row["hash"] = record_hash(row)
    keyring = _SEALERS.get(conn.engine.pool)
    key = chain_key(conn, keyring) if keyring is not None else None
    if key is None and prev is not None and prev.mac is not None:
        # Sealing has begun: an unsealed entry would read as forged from here on.
        raise UnsealableEntry("this audit entry cannot be sealed: the process holds no KEK (open the "
                              "database through the data directory's key file); nothing was written")
    row["mac"] = seal(key, row["hash"]) if key is not None else None
    conn.execute(insert(_log), [row])
    return Entry(row["id"], row["occurred_at"], row["actor"], action, table_name,
                 row["record_id"], outcome, details or {}, row["hash"])


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    head_id: int | None
    head_hash: str
    broken_id: int | None = None
    reason: str | None = None
    sealed: bool = False            # seals were checked (verify was given the keyring)
    unsealed_legacy: int = 0        # rows from before sealing began
    database_written: tuple[int, ...] = ()   # rows the trigger wrote (first MAX_LISTED ids)
    database_written_count: int = 0
    rows_missing_after: int | None = None    # set by verify_checkpoint when the log was cut


@dataclass
class _Seals:
    """What the seal walk has seen so far (it spans batches)."""

    key: bytes | None
    started: bool = False
    legacy: int = 0
    by_database: list[int] | None = None
    by_database_count: int = 0

    def check(self, rows: Iterable[Mapping]) -> tuple[int | None, str | None]:
        """The first row whose seal is wrong or missing, with why; (None, None) if none."""
        for row in rows:
            mac = row.get("mac")
            if mac is not None:
                if self.key is None:
                    return row["id"], "the audit signing key is missing from the database, so no seal can be checked"
                if not hmac.compare_digest(mac, seal(self.key, row["hash"])):
                    return row["id"], "row's seal does not match (forged, or altered by someone without the key)"
                self.started = True
            elif str(row["actor"]).startswith(TRIGGER_ACTOR_PREFIX):
                self.by_database = self.by_database or []
                if len(self.by_database) < MAX_LISTED:
                    self.by_database.append(row["id"])
                self.by_database_count += 1
            elif self.started:
                return row["id"], "row is not sealed (written without Strongroom's key after sealing began: forged?)"
            else:
                self.legacy += 1
        return None, None


def check_rows(rows: Iterable[Mapping], prev_hash: str = GENESIS) -> tuple[int, str, int | None, str | None]:
    """Check consecutive rows against each other; returns (checked, head hash, first
    broken id or None, reason). Pure, so the chain rule is testable on its own."""
    checked = 0
    for row in rows:
        if row["prev_hash"] != prev_hash:
            return checked, prev_hash, row["id"], (
                "prev_hash does not match the previous row's hash "
                "(a row before it was removed, inserted or altered)")
        if record_hash(row) != row["hash"]:
            return checked, prev_hash, row["id"], "row content does not match its hash (row was altered)"
        prev_hash = row["hash"]
        checked += 1
    return checked, prev_hash, None, None


def verify(engine: Engine, *, keyring=None, batch: int = 5000, progress=None) -> VerifyResult:
    """Walk the whole chain in id order; stop at the first row that does not link, hash
    or (given the keyring) carry a valid seal.

    One statement read through the driver's own cursor (server-side on PostgreSQL), so
    memory stays flat over millions of rows, and one pass per row doing the link, the
    hash and the seal together. Measured at scale 1 (bench/integrity.py): the mapping
    rows SQLAlchemy builds and a timestamp object per row were most of a naive loop's
    45,000 rows/s; the time is read as epoch microseconds (PostgreSQL computes it, as its
    trigger does when it hashes) and each row stays a tuple.
    """
    with engine.connect() as conn:
        seals = _Seals(chain_key(conn, keyring)) if keyring is not None else None
        total = conn.execute(select(func.count()).select_from(_log)).scalar() or 0
        walk = _ChainWalk(seals)
        pg = conn.dialect.name == "postgresql"
        for rows in (_pg_hashed_rows(conn, batch) if pg else _raw_rows(conn, batch)):
            if not (walk.feed_hashed(rows) if pg else walk.feed(rows)):
                return _result(False, walk.checked, walk.head_id, walk.head_hash, seals, walk.broken_id, walk.reason)
            if progress:
                progress(walk.checked, total, "verifying audit chain")
    return _result(True, walk.checked, walk.head_id, walk.head_hash, seals)


_RAW_COLUMNS = ("id", "{micros}", "actor", "session_id", "action", "table_name", "record_id", "ip_address",
                "user_agent", "outcome", "details", "prev_hash", "hash", "mac")
_PG_MICROS = "(extract(epoch FROM occurred_at) * 1000000)::bigint"   # as the trigger hashes it
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICRO = timedelta(microseconds=1)


def _raw_rows(conn: Connection, size: int):
    """audit_logs in id order as tuples (_RAW_COLUMNS; the time as epoch microseconds on
    PostgreSQL, as stored text on SQLite), `size` at a time, from one statement."""
    pg = conn.dialect.name == "postgresql"
    columns = ", ".join(_RAW_COLUMNS).format(micros=_PG_MICROS if pg else "occurred_at")
    sql = f"SELECT {columns} FROM audit_logs ORDER BY id"
    conn.execute(text("SELECT 1"))          # begin the transaction a server-side cursor lives in
    raw = conn.connection.driver_connection
    cursor = raw.cursor(name="strongroom_audit_verify") if pg else raw.cursor()
    try:
        if pg:
            cursor.itersize = size
        cursor.execute(sql)
        while rows := cursor.fetchmany(size):
            yield rows if pg else [(r[0], _sqlite_micros(r[1]), *r[2:]) for r in rows]
    finally:
        cursor.close()


def _pg_field(column: str) -> str:
    return f"CASE WHEN {column} IS NULL THEN '~' ELSE pg_catalog.length({column})::text || ':' || {column} END"


# PostgreSQL hashes each row itself (the rule of record_hash and of migration 0002's
# trigger, written out inline with pg_catalog's functions so no function in the
# database's own schema takes part) and says whether it matches; Python checks the links
# and the seals, whose key the database does not hold: a row rewritten with a matching
# hash still needs a seal only Strongroom can make.
_PG_HASHED = ("SELECT id, prev_hash, hash, mac, actor, hash = pg_catalog.encode(pg_catalog.sha256("
              "pg_catalog.convert_to(" + " || ".join(_pg_field(c) for c in (
                  "id::text", f"({_PG_MICROS})::text", "actor", "session_id", "action", "table_name", "record_id",
                  "ip_address", "user_agent", "outcome", "details", "prev_hash")) +
              ", 'UTF8')), 'hex') FROM audit_logs ORDER BY id")


def _pg_hashed_rows(conn: Connection, size: int):
    """(id, prev_hash, hash, mac, actor, hash matches) in id order, `size` at a time."""
    conn.execute(text("SELECT 1"))
    cursor = conn.connection.driver_connection.cursor(name="strongroom_audit_verify")
    try:
        cursor.itersize = size
        cursor.execute(_PG_HASHED)
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        cursor.close()


def _sqlite_micros(stored) -> int:
    """Epoch microseconds of a time as SQLite holds it (UTC, naive ISO text)."""
    moment = datetime.fromisoformat(stored) if isinstance(stored, str) else stored
    if moment.tzinfo is not None:
        return (moment - _EPOCH) // _MICRO
    return (moment - _NAIVE_EPOCH) // _MICRO


class _ChainWalk:
    """The chain rule (as `check_rows`) and the seal rule (as `_Seals.check`) applied
    together to raw rows, batch after batch: the link first, then the hash, then the
    seal, and the first row failing any of them ends the walk."""

    def __init__(self, seals: _Seals | None) -> None:
        self.seals = seals
        self.checked = 0
        self.head_id: int | None = None
        self.head_hash = GENESIS
        self.broken_id: int | None = None
        self.reason: str | None = None

    def _stop(self, row_id: int, reason: str) -> bool:
        self.broken_id, self.reason = row_id, reason
        return False

    def _seal(self, seals: _Seals, key, row_id, actor, row_hash, mac) -> bool:
        if mac is not None:
            if key is None:
                return self._stop(row_id, "the audit signing key is missing from the database, "
                                          "so no seal can be checked")
            if not hmac.compare_digest(mac, hmac.digest(key, row_hash.encode(), "sha256").hex()):
                return self._stop(row_id, "row's seal does not match (forged, or altered by "
                                          "someone without the key)")
            seals.started = True
        elif str(actor).startswith(TRIGGER_ACTOR_PREFIX):
            seals.by_database = seals.by_database or []
            if len(seals.by_database) < MAX_LISTED:
                seals.by_database.append(row_id)
            seals.by_database_count += 1
        elif seals.started:
            return self._stop(row_id, "row is not sealed (written without Strongroom's key "
                                      "after sealing began: forged?)")
        else:
            seals.legacy += 1
        return True

    def feed_hashed(self, rows) -> bool:
        """As `feed`, for rows whose hash the database has already checked."""
        seals = self.seals
        key = seals.key if seals is not None else None
        prev_hash, checked, head_id = self.head_hash, self.checked, self.head_id
        try:
            for row_id, prev, row_hash, mac, actor, hash_ok in rows:
                if prev != prev_hash:
                    return self._stop(row_id, "prev_hash does not match the previous row's hash "
                                              "(a row before it was removed, inserted or altered)")
                if not hash_ok:
                    return self._stop(row_id, "row content does not match its hash (row was altered)")
                if seals is not None and not self._seal(seals, key, row_id, actor, row_hash, mac):
                    return False
                prev_hash, head_id = row_hash, row_id
                checked += 1
            return True
        finally:
            self.head_hash, self.checked, self.head_id = prev_hash, checked, head_id

    def feed(self, rows) -> bool:
        sha256, digest, compare = hashlib.sha256, hmac.digest, hmac.compare_digest
        seals = self.seals
        key = seals.key if seals is not None else None
        prev_hash, checked, head_id = self.head_hash, self.checked, self.head_id

        def f(v):
            return "~" if v is None else f"{len(v)}:{v}"

        try:
            for (row_id, micros, actor, session_id, action, table_name, record_id, ip, agent, outcome,
                 details, prev, row_hash, mac) in rows:
                if prev != prev_hash:
                    return self._stop(row_id, "prev_hash does not match the previous row's hash "
                                              "(a row before it was removed, inserted or altered)")
                i, m = str(row_id), str(micros)
                body = (f"{len(i)}:{i}{len(m)}:{m}{f(actor)}{f(session_id)}{f(action)}{f(table_name)}"
                        f"{f(record_id)}{f(ip)}{f(agent)}{f(outcome)}{f(details)}{f(prev)}")
                if sha256(body.encode()).hexdigest() != row_hash:
                    return self._stop(row_id, "row content does not match its hash (row was altered)")
                if seals is not None:
                    if mac is not None:
                        if key is None:
                            return self._stop(row_id, "the audit signing key is missing from the database, "
                                                      "so no seal can be checked")
                        if not compare(mac, digest(key, row_hash.encode(), "sha256").hex()):
                            return self._stop(row_id, "row's seal does not match (forged, or altered by "
                                                      "someone without the key)")
                        seals.started = True
                    elif str(actor).startswith(TRIGGER_ACTOR_PREFIX):
                        seals.by_database = seals.by_database or []
                        if len(seals.by_database) < MAX_LISTED:
                            seals.by_database.append(row_id)
                        seals.by_database_count += 1
                    elif seals.started:
                        return self._stop(row_id, "row is not sealed (written without Strongroom's key "
                                                  "after sealing began: forged?)")
                    else:
                        seals.legacy += 1
                prev_hash, head_id = row_hash, row_id
                checked += 1
            return True
        finally:
            self.head_hash, self.checked, self.head_id = prev_hash, checked, head_id


def _result(ok: bool, checked: int, head_id: int | None, head_hash: str, seals: _Seals | None,
            broken_id: int | None = None, reason: str | None = None) -> VerifyResult:
    if seals is None:
        return VerifyResult(ok, checked, head_id, head_hash, broken_id, reason)
    return VerifyResult(ok, checked, head_id, head_hash, broken_id, reason, sealed=True,
                        unsealed_legacy=seals.legacy, database_written=tuple(seals.by_database or ()),
                        database_written_count=seals.by_database_count)


def head(conn: Connection) -> tuple[int | None, str]:
    row = conn.execute(select(_log.c.id, _log.c.hash).order_by(_log.c.id.desc()).limit(1)).first()
    return (row.id, row.hash) if row else (None, GENESIS)


def tail(conn: Connection, *, limit: int = 20, before_id: int | None = None,
         actor: str | None = None, action: str | None = None,
         table_name: str | None = None) -> list[Entry]:
    """Newest entries first, filtered; `before_id` pages backwards over millions of rows."""
    query = select(_log).order_by(_log.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(_log.c.id < before_id)
    if actor:
        query = query.where(_log.c.actor == actor)
    if action:
        query = query.where(_log.c.action == action)
    if table_name:
        query = query.where(_log.c.table_name == table_name)
    return [_entry(row) for row in conn.execute(query).mappings()]


def _entry(row) -> Entry:
    try:
        details = json.loads(row["details"])
    except ValueError:
        details = {"unparsed": True}
    return Entry(row["id"], row["occurred_at"], row["actor"], row["action"], row["table_name"],
                 row["record_id"], row["outcome"], details, row["hash"])


# --- signed checkpoints ---------------------------------------------------------------
# A database administrator could rewrite the whole chain, recomputing every hash. A
# checkpoint kept elsewhere (a backup manifest, a second location, a printout) pins the
# chain head at a moment with an Ed25519 signature: a rewritten history no longer
# contains the checkpointed hash at the checkpointed id.

def _checkpoint_message(cp: dict) -> bytes:
    return canonical_json({k: cp[k] for k in ("head_id", "head_hash", "signed_at", "key_id")}).encode()


def checkpoint(conn: Connection, keyring, *, actor: str | None = None, reason: str = "manual") -> dict:
    """Sign the current chain head; returns a JSON-ready checkpoint. With `actor`, the
    checkpoint's own audit entry is appended first, so the checkpoint covers it too."""
    if actor is not None:
        append(conn, actor=actor, action="INTEGRITY", table_name="audit_logs",
               details={"event": "checkpoint", "reason": reason})
    head_id, head_hash = head(conn)
    signer = keyring.signing_key(conn)
    keys = DataKey.__table__
    key_id = conn.execute(select(keys.c.id).where(keys.c.purpose == KeyPurpose.AUDIT_SIGNING,
                                                  keys.c.state == KeyState.ACTIVE)
                          .order_by(keys.c.version.desc()).limit(1)).scalar_one()
    cp = {"head_id": head_id, "head_hash": head_hash, "signed_at": utcnow().isoformat(),
          "key_id": str(key_id)}
    cp["public_key"] = signer.public_key().public_bytes_raw().hex()
    cp["signature"] = signer.sign(_checkpoint_message(cp)).hex()
    return cp


def _parts(cp: dict) -> tuple[bytes, bytes]:
    """The signed message and the signature; IntegrityError if the checkpoint is malformed."""
    try:
        message = _checkpoint_message(cp)
        signature = bytes.fromhex(cp["signature"])
        uuid.UUID(str(cp["key_id"]))
        if cp["head_id"] is not None and (isinstance(cp["head_id"], bool) or not isinstance(cp["head_id"], int)):
            raise ValueError("head_id")
    except (KeyError, TypeError, ValueError, AttributeError):
        raise IntegrityError("checkpoint is malformed (missing or invalid fields)") from None
    return message, signature


def check_signature(cp: dict, public_key: bytes) -> None:
    """IntegrityError unless `cp` is well formed and signed by `public_key`."""
    message, signature = _parts(cp)
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        raise IntegrityError("checkpoint signature is invalid (checkpoint altered or signed by another key)") from None


def verify_checkpoint(engine: Engine, cp: dict, *, public_key: bytes | None = None,
                      keyring=None, progress=None) -> VerifyResult:
    """The chain verifies, and still holds the checkpointed hash at the checkpointed id,
    under a valid signature. `public_key` pins the signer; with `keyring` the signer is
    the key the KEK unwraps (a public key swapped in the database cannot vouch for a
    forged checkpoint); else the one in the database, which only proves consistency.
    A checkpointed entry that is gone means the log was cut: `rows_missing_after` says
    how many entries, at least, were removed from its end."""
    _parts(cp)
    head_id = cp["head_id"]
    if public_key is None and keyring is not None:
        with engine.connect() as conn:
            public_key = keyring.signing_key(conn).public_key().public_bytes_raw()
    if public_key is None:
        keys = DataKey.__table__
        with engine.connect() as conn:
            public_key = conn.execute(select(keys.c.public_key).where(keys.c.id == uuid.UUID(cp["key_id"]))).scalar()
        if public_key is None:
            raise IntegrityError(f"checkpoint signing key {cp['key_id']} is not in the database")
    check_signature(cp, bytes(public_key))
    result = verify(engine, keyring=keyring, progress=progress)
    if not result.ok:
        return result
    if head_id is None:
        return result
    with engine.connect() as conn:
        stored = conn.execute(select(_log.c.hash).where(_log.c.id == head_id)).scalar()
    if stored is None and (result.head_id or 0) < head_id:
        return replace(result, ok=False, broken_id=head_id, rows_missing_after=head_id - (result.head_id or 0),
                       reason=f"the log was cut: entry {head_id}, signed in a checkpoint at {cp['signed_at']}, "
                              f"is gone, and at least {head_id - (result.head_id or 0)} entries with it "
                              f"(the log now ends at entry {result.head_id})")
    if stored != cp["head_hash"]:
        return VerifyResult(False, result.checked, result.head_id, result.head_hash, head_id,
                            "entry at the checkpoint no longer has the checkpointed hash "
                            "(history before the checkpoint was rewritten)")
    return result
