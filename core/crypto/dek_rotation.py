"""DEK rotation: each client's rows re-encrypted under a new data key, resumably.

DEK rotation re-encrypts each client's rows under a new data key, one client per
transaction, so it can be interrupted and re-run at any point. What is still to do is
derived from the data, never from a progress file: a rotation *generation* starts with
a KEY_ROTATE audit entry recording its start time T, and a client is done when its
newest active key was created at or after T and every row of it uses that key. The
audit log is the natural home for that one fact: it is append-only, transactional with
the work and already the evidence a HIPAA reviewer asks for ("when were keys last
rotated?"). Old keys are retired, not destroyed: they stay readable until
`key_status.destroy_retired_unused` finds no row using them. Client file content is not
re-encrypted (it stays under the key it was added with, read by the key id in each
object), so a client's retired keys also stay while the client has a live file.
"""
from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, exists, func, literal, or_, select, update

from strongroom.core import audit
from strongroom.core.context import Context
from strongroom.core.crypto.fields import FieldCipher
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.crypto.reencryption import mark_changed, reseal
from strongroom.core.db.encrypted import CLIENT_KEYED, column
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Base, DataKey, KeyPurpose, KeyState
from strongroom.core.db.types import UTCDateTime, utcnow
from strongroom.core.errors import ConflictError

Progress = Callable[[int, int, str], None]

_keys = DataKey.__table__


@dataclass(frozen=True)
class Generation:
    """One DEK rotation: started at `started_at` over all clients or the listed ones."""

    id: str
    started_at: datetime
    client_ids: frozenset[uuid.UUID] | None


@dataclass(frozen=True)
class DekRotation:
    generation: str
    started_at: datetime
    resumed: bool
    clients_rotated: int
    rows_reencrypted: dict[str, int]
    remaining: int
    completed: bool
    seconds: float


def open_generation(conn: Connection) -> Generation | None:
    """The DEK rotation started and not yet completed, from the audit log (newest first)."""
    before: int | None = None
    while True:
        entries = audit.tail(conn, limit=200, before_id=before, action="KEY_ROTATE")
        if not entries:
            return None
        for entry in entries:
            details = entry.details
            if details.get("kind") != "dek" or details.get("phase") not in ("start", "complete"):
                continue
            if details["phase"] == "complete":
                return None
            ids = details.get("client_ids")
            return Generation(
                id=details["generation"],
                started_at=datetime.fromisoformat(details["started_at"]),
                client_ids=None if ids is None else frozenset(uuid.UUID(i) for i in ids),
            )
        before = entries[-1].id


def _start_generation(conn: Connection, client_ids: list[uuid.UUID] | None,
                      actor: str) -> Generation:
    gen = Generation(str(uuid.uuid4()), utcnow(),
                     None if client_ids is None else frozenset(client_ids))
    audit.append(conn, actor=actor, action="KEY_ROTATE", table_name="data_keys", details={
        "kind": "dek", "phase": "start", "generation": gen.id,
        "started_at": gen.started_at.isoformat(),
        "client_ids": None if client_ids is None else sorted(str(i) for i in client_ids),
    })
    return gen


def _active_client_keys(client_id_col):
    return and_(_keys.c.client_id == client_id_col, _keys.c.purpose == KeyPurpose.CLIENT,
                _keys.c.state == KeyState.ACTIVE)


def _newest_key_id(client_id_col):
    """Correlated subquery: the id of the newest active key of the client in `client_id_col`."""
    return (select(_keys.c.id).where(_active_client_keys(client_id_col))
            .order_by(_keys.c.version.desc()).limit(1).scalar_subquery())


def _pending_condition(gen: Generation | None):
    """SQL condition on `clients` rows: this client still needs (re-)encryption.

    Pending = has an active key AND (its newest active key predates the generation start
    OR some row of it is sealed with a key other than its newest active key).
    """
    clients = Base.metadata.tables["clients"]
    has_active = exists().where(_active_client_keys(clients.c.id))
    stray = [clients.c.key_id != _newest_key_id(clients.c.id)]
    for name in CLIENT_KEYED:
        if name == "clients":
            continue
        table = Base.metadata.tables[name]
        stray.append(exists().where(table.c.client_id == clients.c.id,
                                    table.c.key_id != _newest_key_id(table.c.client_id)))
    needs = or_(*stray)
    if gen is not None:
        newest_created = (select(func.max(_keys.c.created_at))
                          .where(_active_client_keys(clients.c.id)).scalar_subquery())
        needs = or_(newest_created < literal(gen.started_at, UTCDateTime()), needs)
        if gen.client_ids is not None:
            needs = and_(clients.c.id.in_(sorted(gen.client_ids)), needs)
    return and_(has_active, needs)


def _pending_query(gen: Generation | None, client_ids: list[uuid.UUID] | None):
    clients = Base.metadata.tables["clients"]
    query = select(clients.c.id).where(_pending_condition(gen))
    if client_ids is not None:
        query = query.where(clients.c.id.in_(client_ids))
    return query


def count_pending(conn: Connection, gen: Generation | None,
                  client_ids: list[uuid.UUID] | None = None) -> int:
    """Clients that a DEK rotation (generation `gen`, or none: stray rows only) still has to do."""
    return conn.execute(select(func.count()).select_from(
        _pending_query(gen, client_ids).subquery())).scalar() or 0


def rotate_deks(ctx: Context, *, client_ids: list[uuid.UUID] | None = None, actor: str,
                progress: Progress | None = None, batch_clients: int = 200) -> DekRotation:
    """Re-encrypt clients' rows under new data keys; resumable, one client per transaction.

    Starts a new rotation generation (over all clients, or `client_ids`) unless one is
    unfinished, in which case it continues that one: interrupted and re-run, it picks up
    exactly the clients not yet done. `client_ids` with an unfinished all-clients
    generation narrows this run to those clients. Clients whose rows were sealed with an
    older key by a writer racing the rotation are always included and healed.

    Each done client gets a new DEK (version + 1); its old keys are marked retired, not
    destroyed: `destroy_retired_unused` shreds them once nothing uses them. Rows get a
    new `sync_version` so incremental backups and sync copy the new ciphertext.
    `batch_clients` is how many pending client ids are fetched per query.
    """
    started = time.monotonic()
    wanted = None if client_ids is None else sorted(set(client_ids))
    with transaction(ctx.engine) as conn:
        gen = open_generation(conn)
        resumed = gen is not None
        if gen is None:
            gen = _start_generation(conn, wanted, actor)
        elif (wanted is not None and gen.client_ids is not None
              and not set(wanted) <= gen.client_ids):
            raise ConflictError(
                f"a DEK rotation started {gen.started_at:%Y-%m-%d %H:%M} UTC for other clients "
                "is unfinished; run `strongroom keys rotate-deks` without --client to finish it"
            )
        total = count_pending(conn, gen, wanted)

    done, rows = 0, Counter()
    outcome = "failure"
    try:
        for page in _pending_pages(ctx, gen, wanted, batch_clients):
            for client_id in page:
                rows.update(_rotate_client(ctx, client_id, gen))
                done += 1
                if progress:
                    progress(done, total, "re-encrypting client records")
        outcome = "success"
    finally:
        remaining, completed = _close_run(ctx, gen, done, rows, outcome, actor)
    return DekRotation(gen.id, gen.started_at, resumed, done, dict(rows), remaining, completed,
                       round(time.monotonic() - started, 3))


def _pending_pages(ctx: Context, gen: Generation, wanted: list[uuid.UUID] | None,
                   batch: int) -> Iterator[list[uuid.UUID]]:
    clients = Base.metadata.tables["clients"]
    last: uuid.UUID | None = None
    while True:
        query = _pending_query(gen, wanted).order_by(clients.c.id).limit(batch)
        if last is not None:
            query = query.where(clients.c.id > last)
        with transaction(ctx.engine, read_only=True) as conn:
            page = list(conn.execute(query).scalars())
        if not page:
            return
        yield page
        last = page[-1]


def _close_run(ctx: Context, gen: Generation, done: int, rows: Counter, outcome: str,
               actor: str) -> tuple[int, bool]:
    """Audit this run's work and, when nothing is left, the generation's completion."""
    with transaction(ctx.engine) as conn:
        remaining = count_pending(conn, gen)
        audit.append(conn, actor=actor, action="KEY_ROTATE", table_name="data_keys",
                     outcome=outcome, details={
                         "kind": "dek", "phase": "run", "generation": gen.id,
                         "clients_rotated": done, "rows_reencrypted": dict(rows),
                         "remaining": remaining})
        completed = remaining == 0 and outcome == "success"
        if completed:
            audit.append(conn, actor=actor, action="KEY_ROTATE", table_name="data_keys",
                         details={"kind": "dek", "phase": "complete", "generation": gen.id})
    return remaining, completed


def _rotate_client(ctx: Context, client_id: uuid.UUID, gen: Generation) -> Counter[str]:
    """One client in one transaction: new key if due, re-encrypt rows, retire old keys."""
    keyring = ctx.keyring
    rows: Counter[str] = Counter()
    with transaction(ctx.engine) as conn:
        keys = conn.execute(
            select(_keys.c.id, _keys.c.version, _keys.c.state, _keys.c.created_at)
            .where(_keys.c.client_id == client_id, _keys.c.purpose == KeyPurpose.CLIENT)
            .order_by(_keys.c.version.desc()).with_for_update()
        ).all()
        active = [k for k in keys if k.state == KeyState.ACTIVE]
        if not active:
            return rows  # erased (shredded) since the page was listed
        newest = active[0]
        due = gen.client_ids is None or client_id in gen.client_ids
        if due and newest.created_at < gen.started_at:
            target = keyring.create_key(conn, KeyPurpose.CLIENT, client_id,
                                        version=keys[0].version + 1)
        else:
            target = keyring.cipher(conn, newest.id)
        for name, fields in CLIENT_KEYED.items():
            rows[name] += _reencrypt_rows(conn, keyring, name, fields, client_id, target)
        old = [k.id for k in active if k.id != target.key_id]
        if old:
            conn.execute(update(_keys).where(_keys.c.id.in_(old))
                         .values(state=KeyState.RETIRED, retired_at=utcnow()))
    return +rows


def _reencrypt_rows(conn: Connection, keyring: Keyring, name: str, fields: tuple[str, ...],
                    client_id: uuid.UUID, target: FieldCipher) -> int:
    table = Base.metadata.tables[name]
    owner = table.c.id if name == "clients" else table.c.client_id
    found = conn.execute(select(table).where(
        owner == client_id, table.c.key_id != target.key_id)).mappings().all()
    for row in found:
        values: dict = {"key_id": target.key_id}
        for field_name in fields:
            blob = row[column(field_name)]
            if blob is not None:
                values[column(field_name)] = reseal(conn, keyring, target, blob, name,
                                                    field_name, row["id"])
        mark_changed(conn, row, values)
        conn.execute(update(table).where(table.c.id == row["id"]).values(**values))
    return len(found)
