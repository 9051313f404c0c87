"""The audit log: an append-only hash chain in `audit_logs`.

Each row's `hash` is SHA-256 over a canonical encoding of its own fields and the
previous row's hash (`prev_hash`), so changing, inserting or deleting any row breaks
every link after it; `verify` names the first broken row. The encoding is each field as
`<length>:<text>` (NULL as `~`) in a fixed order; PostgreSQL's trigger function
strongroom_audit_append (migration 0002) computes exactly the same thing, so rows that
triggers write for changes made behind the application's back verify like any other.

Appends are serialised: on PostgreSQL by a transaction-level advisory lock shared with
the triggers, on SQLite by the write lock every transaction takes (BEGIN IMMEDIATE).

Never put PHI in `details`: name tables, columns, row ids and counts, not values.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine, func, insert, select, text

from strongroom.core.db.models import AuditLog, DataKey, KeyPurpose, KeyState
from strongroom.core.db.paging import batches
from strongroom.core.db.pg import AUDIT_LOCK_KEY
from strongroom.core.db.types import utcnow
from strongroom.core.errors import IntegrityError

GENESIS = "0" * 64
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
    prev = conn.execute(select(_log.c.id, _log.c.hash).order_by(_log.c.id.desc()).limit(1)).first()
    if conn.dialect.name == "postgresql":
        new_id = conn.execute(text("SELECT nextval(pg_get_serial_sequence('audit_logs', 'id'))")).scalar()
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


def verify(engine: Engine, *, batch: int = 5000, progress=None) -> VerifyResult:
    """Walk the whole chain in id order; stop at the first row that does not link or hash.

    Streams in batches by primary key, so memory stays flat over millions of rows.
    """
    prev_hash = GENESIS
    checked = 0
    last_id: int | None = None
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(_log)).scalar() or 0
        for rows in batches(conn, _log, size=batch):
            n, prev_hash, broken, reason = check_rows(rows, prev_hash)
            checked += n
            if broken is not None:
                return VerifyResult(False, checked, last_id, prev_hash, broken, reason)
            last_id = rows[-1]["id"]
            if progress:
                progress(checked, total, "verifying audit chain")
    return VerifyResult(True, checked, last_id, prev_hash)


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


def checkpoint(conn: Connection, keyring) -> dict:
    """Sign the current chain head; returns a JSON-ready checkpoint."""
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


def verify_checkpoint(engine: Engine, cp: dict, *, public_key: bytes | None = None) -> VerifyResult:
    """The chain verifies, and still holds the checkpointed hash at the checkpointed id,
    under a valid signature. `public_key` pins the signer (else the one in the database,
    which only proves consistency, not authorship)."""
    try:
        message = _checkpoint_message(cp)
        signature = bytes.fromhex(cp["signature"])
        head_id = cp["head_id"]
    except (KeyError, TypeError, ValueError):
        raise IntegrityError("checkpoint is malformed (missing or invalid fields)") from None
    if public_key is None:
        keys = DataKey.__table__
        with engine.connect() as conn:
            public_key = conn.execute(select(keys.c.public_key).where(keys.c.id == uuid.UUID(cp["key_id"]))).scalar()
        if public_key is None:
            raise IntegrityError(f"checkpoint signing key {cp['key_id']} is not in the database")
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public_key)).verify(signature, message)
    except InvalidSignature:
        raise IntegrityError("checkpoint signature is invalid (checkpoint altered or signed by another key)") from None
    result = verify(engine)
    if not result.ok:
        return result
    if head_id is None:
        return result
    with engine.connect() as conn:
        stored = conn.execute(select(_log.c.hash).where(_log.c.id == head_id)).scalar()
    if stored != cp["head_hash"]:
        return VerifyResult(False, result.checked, result.head_id, result.head_hash, head_id,
                            "entry at the checkpoint no longer has the checkpointed hash "
                            "(history before the checkpoint was rewritten)")
    return result
