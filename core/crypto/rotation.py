"""Key rotation: a new KEK rewraps every data key; a DEK rotation re-encrypts rows.

KEK rotation is cheap (the DEKs are rewrapped, no row changes) and must survive a
crash at any instant, because the KEK is the one secret without which nothing opens.
The order is: new key to `<kek_file>.pending` (fsynced) -> every data key rewrapped in
one transaction -> old key copied to `<kek_file>.retired-<kek id>` -> pending renamed
over the key file. `load_keks` offers the key file and the pending file together and
the keyring picks the KEK by the id stored on each data key, so every intermediate
state opens; re-running `rotate_kek` (or `finish_kek_rotation`) completes it.

DEK rotation re-encrypts each client's rows under a new data key, one client per
transaction, so it can be interrupted and re-run at any point. What is still to do is
derived from the data, never from a progress file: a rotation *generation* starts with
a KEY_ROTATE audit entry recording its start time T, and a client is done when its
newest active key was created at or after T and every row of it uses that key. The
audit log is the natural home for that one fact: it is append-only, transactional with
the work and already the evidence a HIPAA reviewer asks for ("when were keys last
rotated?"). Old keys are retired, not destroyed: they stay readable until
`destroy_retired_unused` finds no row using them. Client file content is not
re-encrypted (it stays under the key it was added with, read by the key id in each
object), so a client's retired keys also stay while the client has a live file.
"""
from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)

from strongroom.core import audit
from strongroom.core.context import Context
from strongroom.core.crypto.fields import FieldCipher, associated_data, key_id_of
from strongroom.core.crypto.kek import (
    Kek,
    generate_kek,
    kek_id_of,
    load_keks,
    pending_path,
    read_kek_file,
    write_kek_file,
)
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.encrypted import CLIENT_KEYED, SYSTEM_KEYED, column
from strongroom.core.db.engine import is_postgres, transaction
from strongroom.core.db.models import Base, DataKey, KeyPurpose, KeyState
from strongroom.core.db.types import UTCDateTime, utcnow
from strongroom.core.errors import (
    ConfigError,
    ConflictError,
    KeyUnavailableError,
    NotFoundError,
    ValidationError,
)
from strongroom.core.fsutil import fsync_dir
from strongroom.core.repository.changes import next_change_version, row_checksum

Progress = Callable[[int, int, str], None]

_keys = DataKey.__table__
_REWRAP_BATCH = 2000
_RETIRED_INFIX = ".retired-"


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


# =====================================================================================
# KEK rotation
# =====================================================================================

class KekHolder(Protocol):
    """Something outside the database holding a key wrapped by the KEK (a backup
    repository's config). Kept abstract so key rotation does not depend on backups."""

    def describe(self) -> str: ...

    def rewrap(self, keyring: Keyring) -> bool:
        """Wrap under `keyring.kek_id`, keeping a copy the old KEK opens; True if changed."""

    def confirm(self, keyring: Keyring) -> None:
        """Drop the old-KEK copy once the new KEK is installed as the key file."""


@dataclass(frozen=True)
class KekRotation:
    old_kek_ids: list[str]
    new_kek_id: str
    rewrapped: int
    by_purpose: dict[str, int]
    retired_files: list[str]
    resumed: bool
    seconds: float
    holders_rewrapped: list[str] = field(default_factory=list)


def retired_path(kek_file: Path, kek_id: str) -> Path:
    return kek_file.with_name(f"{kek_file.name}{_RETIRED_INFIX}{kek_id}")


def _kek_file_of(ctx: Context) -> Path:
    """The key file to rotate; other KEK sources cannot be rewritten from here."""
    kek_file = ctx.settings.keys.kek_file
    if kek_file is None or ctx.keyring.primary.source != str(kek_file):
        raise ConfigError(
            f"the key-encryption key comes from {ctx.keyring.primary.source}; automatic "
            "KEK rotation only supports keys.kek_file. To rotate by hand: write the current "
            "key to a file (mode 0600), point keys.kek_file at it and stop using the "
            "credential/environment source, run `strongroom keys rotate-kek`, then load the "
            "new key file into your credential store and remove the file"
        )
    return kek_file


def _known_keks(kek_file: Path) -> list[Kek]:
    """Every KEK on disk for this key file: current, pending, and retired ones.

    Retired keys are included so a data key wrapped by a process that still held the old
    KEK after a rotation (a daemon not yet restarted) is healed by the next run instead
    of becoming unreadable.
    """
    keks = [read_kek_file(kek_file)]
    pending = pending_path(kek_file)
    if pending.exists():
        keks.append(read_kek_file(pending))
    for path in sorted(kek_file.parent.glob(f"{kek_file.name}{_RETIRED_INFIX}*")):
        keks.append(read_kek_file(path))
    return keks


def _kek_ids_in_use(conn: Connection) -> Counter[str]:
    rows = conn.execute(
        select(_keys.c.kek_id, func.count()).where(
            _keys.c.state != KeyState.DESTROYED, _keys.c.wrapped_key.is_not(None))
        .group_by(_keys.c.kek_id)
    ).all()
    return Counter({kek_id: count for kek_id, count in rows})


def _choose_new_kek(kek_file: Path, new_key: bytes | None) -> tuple[Kek, bool]:
    """The KEK to rotate to and whether it resumes an interrupted rotation."""
    pending = pending_path(kek_file)
    if pending.exists():
        kek = read_kek_file(pending)
        if new_key is not None and kek_id_of(new_key) != kek.kek_id:
            raise ConflictError(
                f"a rotation to KEK {kek.kek_id} is already pending ({pending}); finish it "
                "with `strongroom keys rotate-kek` before rotating to another key"
            )
        return kek, True
    key = new_key if new_key is not None else generate_kek()
    if len(key) != 32:
        raise ValidationError(f"a KEK must be 32 bytes, got {len(key)}")
    return Kek(key, str(pending)), False


def rotate_kek(ctx: Context, new_key: bytes | None = None, *, actor: str,
               holders: Sequence[KekHolder] = ()) -> KekRotation:
    """Rotate the key-encryption key held in `keys.kek_file`; resumes an unfinished one.

    Threat: a KEK that may have leaked (an old backup of the key file, a departed
    administrator). After rotation the database's data keys open only with the new KEK.
    The old key is kept as `<kek_file>.retired-<kek id>` (0600) on purpose: database
    backups taken before the rotation hold data keys wrapped by it, and a restore of one
    needs it. Move retired keys to offline storage rather than deleting them, and print a
    new recovery kit (`strongroom keys export-kit`): the old kit opens only the old KEK.

    Crash safety: see the module docstring; every state between the steps opens. Other
    processes holding the old keyring (a running daemon) must be restarted afterwards;
    keys they wrap meanwhile are rewrapped by the next `rotate_kek`/`finish_kek_rotation`.

    `holders` (the backup repositories) are rewrapped right after the pending key file is
    written and before the database: if one is unreachable the rotation stops there,
    still pending and resumable, instead of finishing with repositories that only the
    retired key opens (the next backup would fail, and a restore would need the
    retired file). Each keeps an old-KEK copy until the new key file is installed.
    """
    started = time.monotonic()
    kek_file = _kek_file_of(ctx)
    new_kek, resumed = _choose_new_kek(kek_file, new_key)
    known = {k.kek_id: k for k in _known_keks(kek_file)}
    current = known[read_kek_file(kek_file).kek_id]
    if new_kek.kek_id == current.kek_id:
        raise ValidationError("the new KEK is the current KEK; nothing to rotate")

    with ctx.engine.connect() as conn:
        in_use = _kek_ids_in_use(conn)
    unknown = sorted(set(in_use) - set(known) - {new_kek.kek_id})
    if unknown:
        raise KeyUnavailableError(
            f"data keys are wrapped by KEK(s) {', '.join(unknown)}, which no key file beside "
            f"{kek_file} holds; restore them (recovery kit or retired key file) before rotating"
        )

    if not resumed:
        write_kek_file(pending_path(kek_file), new_kek.key)
    keyring = Keyring([new_kek, *[k for k in known.values() if k.kek_id != new_kek.kek_id]])
    rewrapped_holders = [h.describe() for h in holders if h.rewrap(keyring)]
    by_purpose = _rewrap_all(ctx, keyring, new_kek.kek_id, sorted(in_use), resumed, actor)
    retired = _install_pending(kek_file, current)
    # This process's keyring must stop wrapping new keys with the retired KEK.
    ctx.keyring = Keyring(load_keks(ctx.settings.keys))
    for holder in holders:
        holder.confirm(ctx.keyring)
    return KekRotation(
        old_kek_ids=sorted(k for k in in_use if k != new_kek.kek_id) or [current.kek_id],
        new_kek_id=new_kek.kek_id, rewrapped=sum(by_purpose.values()), by_purpose=by_purpose,
        retired_files=[str(retired)], resumed=resumed,
        seconds=round(time.monotonic() - started, 3), holders_rewrapped=rewrapped_holders,
    )


def finish_kek_rotation(ctx: Context, *, actor: str,
                        holders: Sequence[KekHolder] = ()) -> KekRotation:
    """Complete a KEK rotation that a crash interrupted (a `.pending` key file exists)."""
    kek_file = _kek_file_of(ctx)
    if not pending_path(kek_file).exists():
        raise NotFoundError(f"no KEK rotation is pending ({pending_path(kek_file)} does not exist)")
    return rotate_kek(ctx, actor=actor, holders=holders)


def _rewrap_all(ctx: Context, keyring: Keyring, new_kek_id: str, old_ids: list[str],
                resumed: bool, actor: str) -> dict[str, int]:
    """Rewrap every live data key not yet under `new_kek_id`, all in one transaction."""
    counts: Counter[str] = Counter()
    with transaction(ctx.engine) as conn:
        if is_postgres(conn):
            # Blocks concurrent inserts of data keys (new clients) until commit, so none is
            # wrapped by the old KEK behind our back during the rewrap.
            conn.execute(text("LOCK TABLE data_keys IN SHARE ROW EXCLUSIVE MODE"))
        for batch in _live_keys_not_under(conn, new_kek_id):
            params = []
            for row in batch:
                key = keyring.unwrap(row.id, row.purpose, row.wrapped_key, row.kek_id)
                params.append((row.id, keyring.wrap(key, row.id, row.purpose, new_kek_id)))
                counts[row.purpose.value] += 1
            _rewrap_batch(conn, new_kek_id, params)
        audit.append(conn, actor=actor, action="KEY_ROTATE", table_name="data_keys", details={
            "kind": "kek", "old_kek_ids": [k for k in old_ids if k != new_kek_id],
            "new_kek_id": new_kek_id, "rewrapped": sum(counts.values()),
            "by_purpose": dict(counts), "resumed": resumed,
        })
    return dict(counts)


def _rewrap_batch(conn: Connection, kek_id: str, params: list[tuple[uuid.UUID, bytes]]) -> None:
    """Store one batch of rewrapped keys: one statement on PostgreSQL, executemany on SQLite."""
    if is_postgres(conn):
        # unnest() over two arrays: 100k keys in ~5 s instead of ~8 s with executemany.
        conn.execute(text(
            "UPDATE data_keys SET wrapped_key = v.w, kek_id = :kek_id "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:ws AS bytea[])) AS v(id, w) "
            "WHERE data_keys.id = v.id"
        ), {"kek_id": kek_id, "ids": [i for i, _ in params], "ws": [w for _, w in params]})
        return
    conn.execute(update(_keys).where(_keys.c.id == bindparam("b_id"))
                 .values(wrapped_key=bindparam("b_wrapped"), kek_id=kek_id),
                 [{"b_id": i, "b_wrapped": w} for i, w in params])


def _live_keys_not_under(conn: Connection, kek_id: str) -> Iterator[list]:
    """Keyset-paged batches of (id, purpose, wrapped_key, kek_id), in id order."""
    last: uuid.UUID | None = None
    while True:
        query = (select(_keys.c.id, _keys.c.purpose, _keys.c.wrapped_key, _keys.c.kek_id)
                 .where(_keys.c.state != KeyState.DESTROYED, _keys.c.wrapped_key.is_not(None),
                        _keys.c.kek_id != kek_id)
                 .order_by(_keys.c.id).limit(_REWRAP_BATCH))
        if last is not None:
            query = query.where(_keys.c.id > last)
        batch = conn.execute(query).all()
        if not batch:
            return
        yield batch
        last = batch[-1].id


def _install_pending(kek_file: Path, current: Kek) -> Path:
    """Keep a copy of the old KEK, then atomically put the pending key in its place.

    The old key is copied (not renamed) so that at every instant `kek_file` exists: a
    crash between the copy and the rename leaves key file + pending, which loads.
    """
    retired = retired_path(kek_file, current.kek_id)
    if not retired.exists():
        write_kek_file(retired, current.key)
    pending = pending_path(kek_file)
    pending.chmod(0o600)
    pending.replace(kek_file)
    fsync_dir(kek_file.parent)
    return retired


# =====================================================================================
# DEK rotation
# =====================================================================================

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
    clients = _table("clients")
    has_active = exists().where(_active_client_keys(clients.c.id))
    stray = [clients.c.key_id != _newest_key_id(clients.c.id)]
    for name in CLIENT_KEYED:
        if name == "clients":
            continue
        table = _table(name)
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
    clients = _table("clients")
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
    clients = _table("clients")
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
    table = _table(name)
    owner = table.c.id if name == "clients" else table.c.client_id
    found = conn.execute(select(table).where(
        owner == client_id, table.c.key_id != target.key_id)).mappings().all()
    for row in found:
        values: dict = {"key_id": target.key_id}
        for field_name in fields:
            blob = row[column(field_name)]
            if blob is not None:
                values[column(field_name)] = _reseal(conn, keyring, target, blob, name,
                                                     field_name, row["id"])
        _mark_changed(conn, row, values)
        conn.execute(update(table).where(table.c.id == row["id"]).values(**values))
    return len(found)


def _mark_changed(conn: Connection, row, values: dict) -> None:
    """New change counter and checksum, as every write does (repository.changes).

    Rotation changes stored bytes, so incremental backups and sync must copy the row
    again and integrity checks must see a checksum that matches it. `updated_at` is
    left alone: nothing a person wrote has changed.
    """
    values["sync_version"] = next_change_version(conn)
    values["data_checksum"] = row_checksum({**row, **values})


def _reseal(conn: Connection, keyring: Keyring, target: FieldCipher, blob: bytes, table: str,
            field_name: str, row_id: uuid.UUID) -> bytes:
    aad = associated_data(table, field_name, row_id)
    where = f"{table}.{column(field_name)} of row {row_id}"
    plain = keyring.cipher(conn, key_id_of(blob)).decrypt(blob, aad, where=where)
    return target.encrypt(plain, aad)


# =====================================================================================
# System key rotation
# =====================================================================================

@dataclass(frozen=True)
class SystemKeyRotation:
    old_key_ids: list[str]
    new_key_id: str
    version: int
    rows_reencrypted: dict[str, int]


def rotate_system_key(ctx: Context, *, actor: str) -> SystemKeyRotation:
    """New system DEK; re-encrypt every SYSTEM_KEYED field (TOTP seeds) in one transaction.

    There are few such rows, so one transaction is both simplest and crash-safe.
    """
    keyring = ctx.keyring
    counts: Counter[str] = Counter()
    with transaction(ctx.engine) as conn:
        keys = conn.execute(
            select(_keys.c.id, _keys.c.version, _keys.c.state)
            .where(_keys.c.purpose == KeyPurpose.SYSTEM)
            .order_by(_keys.c.version.desc()).with_for_update()
        ).all()
        version = (keys[0].version + 1) if keys else 1
        target = keyring.create_key(conn, KeyPurpose.SYSTEM, version=version)
        for name, fields in SYSTEM_KEYED.items():
            table = _table(name)
            cols = [table.c[column(f)] for f in fields]
            found = conn.execute(select(table).where(
                or_(*[c.is_not(None) for c in cols]))).mappings().all()
            for row in found:
                values = {}
                for field_name in fields:
                    blob = row[column(field_name)]
                    if blob is not None and key_id_of(blob) != target.key_id:
                        values[column(field_name)] = _reseal(conn, keyring, target, blob, name,
                                                             field_name, row["id"])
                if values:
                    if "sync_version" in row:
                        _mark_changed(conn, row, values)
                    conn.execute(update(table).where(table.c.id == row["id"]).values(**values))
                    counts[name] += 1
        old = [k.id for k in keys if k.state == KeyState.ACTIVE]
        if old:
            conn.execute(update(_keys).where(_keys.c.id.in_(old))
                         .values(state=KeyState.RETIRED, retired_at=utcnow()))
        audit.append(conn, actor=actor, action="KEY_ROTATE", table_name="data_keys", details={
            "kind": "system", "old_key_ids": [str(k) for k in old],
            "new_key_id": str(target.key_id), "version": version,
            "rows_reencrypted": dict(counts),
        })
    # The keyring caches which key is "the" system key; it must use the new one now.
    # (Keyring has no public way to drop that cache yet.)
    keyring._singletons.pop(KeyPurpose.SYSTEM, None)
    return SystemKeyRotation([str(k) for k in old], str(target.key_id), version, dict(counts))


# =====================================================================================
# Status and destruction
# =====================================================================================

def _system_rows_by_key(conn: Connection) -> Counter[tuple[str, uuid.UUID]]:
    """(table, key id) -> rows, for fields whose key id lives only inside the ciphertext."""
    counts: Counter[tuple[str, uuid.UUID]] = Counter()
    for name, fields in SYSTEM_KEYED.items():
        table = _table(name)
        for field_name in fields:
            col = table.c[column(field_name)]
            for blob in conn.execute(select(col).where(col.is_not(None))).scalars():
                counts[(name, key_id_of(blob))] += 1
    return counts


def key_status(conn: Connection) -> dict:
    """Counts for `strongroom keys status`: keys by purpose/state, rows on each key version.

    `rows` answers "is the rotation finished, and can the retired keys go?": for every
    encrypted table, the number of rows sealed with keys of each (purpose, version,
    state). Nothing here is secret: ids, counts and timestamps only.
    """
    keys = [
        {"purpose": p.value, "state": s.value, "keys": n}
        for p, s, n in conn.execute(
            select(_keys.c.purpose, _keys.c.state, func.count())
            .group_by(_keys.c.purpose, _keys.c.state).order_by(_keys.c.purpose, _keys.c.state))
    ]
    rows: list[dict] = []
    for name in CLIENT_KEYED:
        table = _table(name)
        for version, state, n in conn.execute(
                select(_keys.c.version, _keys.c.state, func.count())
                .select_from(table.join(_keys, _keys.c.id == table.c.key_id))
                .group_by(_keys.c.version, _keys.c.state)
                .order_by(_keys.c.version, _keys.c.state)):
            rows.append({"table": name, "purpose": "client", "version": version,
                         "state": state.value, "rows": n})
    system = _system_rows_by_key(conn)
    if system:
        meta = {r.id: r for r in conn.execute(select(_keys.c.id, _keys.c.version, _keys.c.state)
                                              .where(_keys.c.id.in_({k for _, k in system})))}
        grouped: Counter[tuple[str, int, str]] = Counter()
        for (name, key_id), n in system.items():
            info = meta.get(key_id)
            grouped[(name, info.version if info else -1,
                     info.state.value if info else "missing")] += n
        rows += [{"table": t, "purpose": "system", "version": v, "state": s, "rows": n}
                 for (t, v, s), n in sorted(grouped.items())]
    gen = open_generation(conn)
    return {
        "kek_ids": dict(sorted(_kek_ids_in_use(conn).items())),
        "keys": keys,
        "rows": rows,
        "rows_on_retired_keys": sum(r["rows"] for r in rows if r["state"] == "retired"),
        "dek_rotation": None if gen is None else {
            "generation": gen.id, "started_at": gen.started_at.isoformat(),
            "scope": "all" if gen.client_ids is None else len(gen.client_ids),
            "remaining_clients": count_pending(conn, gen),
        },
        "stray_clients": count_pending(conn, None),
    }


def retired_unused(conn: Connection, *, for_update: bool = False) -> list[tuple[uuid.UUID, KeyPurpose]]:
    """(id, purpose) of retired client and system keys no row of `conn`'s database uses.

    What `destroy_retired_unused` destroys, and what a snapshot does not need: the
    backup's key bag carries such a key only while an older kept snapshot needs it."""
    unused = [~exists().where(_table(name).c.key_id == _keys.c.id) for name in CLIENT_KEYED]
    # A client file's content stays sealed under the key it was added with (rotation
    # re-encrypts the row's name, not the content; its chunks name their key only inside
    # the objects), so a retired client key is kept while its client has a live file.
    files = _table("client_files")
    unused.append(~exists().where(files.c.client_id == _keys.c.client_id, files.c.deleted_at.is_(None)))
    query = (select(_keys.c.id, _keys.c.purpose)
             .where(_keys.c.state == KeyState.RETIRED,
                    _keys.c.purpose.in_([KeyPurpose.CLIENT, KeyPurpose.SYSTEM]), *unused))
    candidates = conn.execute(query.with_for_update() if for_update else query).all()
    system_in_use = {key_id for _, key_id in _system_rows_by_key(conn)}
    return [(k.id, k.purpose) for k in candidates
            if not (k.purpose == KeyPurpose.SYSTEM and k.id in system_in_use)]


@dataclass(frozen=True)
class Destroyed:
    key_ids: list[str]
    by_purpose: dict[str, int] = field(default_factory=dict)


def destroy_retired_unused(ctx: Context, *, actor: str) -> Destroyed:
    """Crypto-shred retired data keys that no row of the live database uses any more.

    Irreversible for the live database. Snapshots taken before still restore: each
    backup repository's key bag keeps the key while a kept snapshot needs it, and a
    prune drops it once none does (core/backup/keybag.py). Only client and system keys
    are considered: blind-index and signing keys are never retired by rotation.
    """
    by_purpose: Counter[str] = Counter()
    with transaction(ctx.engine) as conn:
        doomed = retired_unused(conn, for_update=True)
        if doomed:
            conn.execute(update(_keys).where(_keys.c.id.in_([k for k, _ in doomed]))
                         .values(wrapped_key=None, state=KeyState.DESTROYED,
                                 destroyed_at=utcnow()))
            for key_id, purpose in doomed:
                ctx.keyring.forget(key_id)
                by_purpose[purpose.value] += 1
            audit.append(conn, actor=actor, action="KEY_DESTROY", table_name="data_keys",
                         details={"reason": "retired and unused", "count": len(doomed),
                                  "by_purpose": dict(by_purpose),
                                  "key_ids": sorted(str(k) for k, _ in doomed)})
    return Destroyed(sorted(str(k) for k, _ in doomed), dict(by_purpose))
