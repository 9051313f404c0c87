"""KEK rotation: a new key-encryption key rewraps every data key; no row changes.

KEK rotation is cheap (the DEKs are rewrapped, no row changes) and must survive a
crash at any instant, because the KEK is the one secret without which nothing opens.
The order is: new key to `<kek_file>.pending` (fsynced) -> every data key rewrapped in
one transaction -> old key copied to `<kek_file>.retired-<kek id>` -> pending renamed
over the key file. `load_keks` offers the key file and the pending file together and
the keyring picks the KEK by the id stored on each data key, so every intermediate
state opens; re-running `rotate_kek` (or `finish_kek_rotation`) completes it.

The same steps move the KEK between a file and AWS KMS (`to="kms"`/`to="file"`): the
pending file then holds a KMS envelope (core.crypto.kms) instead of a key, or a fresh
plain key replaces an envelope. A retired KMS KEK is kept as its envelope, never as the
key in clear: opening it later needs the KMS key.

Data keys themselves are rotated by dek_rotation (client keys) and system_key_rotation.
"""
from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, bindparam, func, select, text, update

from strongroom.core import audit
from strongroom.core.config import KeySettings
from strongroom.core.context import Context
from strongroom.core.crypto import kms
from strongroom.core.crypto.kek import (
    Kek,
    generate_kek,
    kek_id_of,
    kms_config,
    load_keks,
    pending_path,
    read_kek_file,
    write_kek_file,
)
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import is_postgres, transaction
from strongroom.core.db.models import DataKey, KeyState
from strongroom.core.errors import (
    ConfigError,
    ConflictError,
    KeyUnavailableError,
    NotFoundError,
    ValidationError,
)
from strongroom.core.fsutil import fsync_dir

_keys = DataKey.__table__
_REWRAP_BATCH = 2000
_RETIRED_INFIX = ".retired-"


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


def _known_keks(kek_file: Path, settings: KeySettings) -> list[Kek]:
    """Every KEK on disk for this key file: current, pending, and retired ones.

    Retired keys are included so a data key wrapped by a process that still held the old
    KEK after a rotation (a daemon not yet restarted) is healed by the next run instead
    of becoming unreadable.
    """
    keks = [read_kek_file(kek_file, settings)]
    pending = pending_path(kek_file)
    if pending.exists():
        keks.append(read_kek_file(pending, settings))
    for path in sorted(kek_file.parent.glob(f"{kek_file.name}{_RETIRED_INFIX}*")):
        try:
            keks.append(read_kek_file(path, settings))
        except KeyUnavailableError:
            # A retired KMS KEK whose KMS key is gone or out of reach: only needed if a
            # data key still uses it, which rotate_kek checks by id and reports.
            continue
    return keks


def kek_ids_in_use(conn: Connection) -> Counter[str]:
    """How many live data keys each KEK id wraps (destroyed keys have nothing wrapped)."""
    rows = conn.execute(
        select(_keys.c.kek_id, func.count()).where(
            _keys.c.state != KeyState.DESTROYED, _keys.c.wrapped_key.is_not(None))
        .group_by(_keys.c.kek_id)
    ).all()
    return Counter({kek_id: count for kek_id, count in rows})


def _choose_new_kek(kek_file: Path, new_key: bytes | None, settings: KeySettings,
                    to: str | None, kms_key_id: str | None) -> tuple[Kek, bool]:
    """The KEK to rotate to and whether it resumes an interrupted rotation."""
    pending = pending_path(kek_file)
    if pending.exists():
        kek = read_kek_file(pending, settings)
        other = (new_key is not None and kek_id_of(new_key) != kek.kek_id) \
            or (to == "file" and kek.envelope is not None) or (to == "kms" and kek.envelope is None)
        if other:
            raise ConflictError(
                f"a rotation to KEK {kek.kek_id} is already pending ({pending}); finish it "
                "with `strongroom keys rotate-kek` before rotating to another key"
            )
        return kek, True
    if to == "kms":
        if not kms_key_id:
            raise ValidationError("kms_key_id: required to move the KEK to KMS")
        if new_key is not None:
            raise ValidationError("new_key: a KMS KEK is generated by KMS, not given")
        envelope, key = kms.create_envelope(kms_config(settings), kms_key_id)
        return Kek(key, str(pending), envelope), False
    if kms_key_id:
        raise ValidationError("kms_key_id: only with a move to KMS (to=kms)")
    key = new_key if new_key is not None else generate_kek()
    if len(key) != 32:
        raise ValidationError(f"a KEK must be 32 bytes, got {len(key)}")
    return Kek(key, str(pending)), False


def rotate_kek(ctx: Context, new_key: bytes | None = None, *, actor: str,
               holders: Sequence[KekHolder] = (), to: str | None = None,
               kms_key_id: str | None = None) -> KekRotation:
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

    `to`: "kms" moves the KEK into AWS KMS under `kms_key_id` (a new wrapping key from
    GenerateDataKey, stored as its KMS envelope), "file" to a new plain key file, None
    keeps the current kind (a new key of the same kind: a new envelope under the same
    KMS key). Afterwards keys.kms_key_id must name the new KMS key, or be removed after
    a move to a file, or the next start refuses the key file.
    """
    started = time.monotonic()
    if to not in (None, "file", "kms"):
        raise ValidationError("to: must be file or kms")
    keys = ctx.settings.keys
    kek_file = _kek_file_of(ctx)
    current = read_kek_file(kek_file, keys)
    if to is None and not pending_path(kek_file).exists() and current.envelope is not None:
        to, kms_key_id = "kms", kms_key_id or current.envelope.kms_key_arn
    new_kek, resumed = _choose_new_kek(kek_file, new_key, keys, to, kms_key_id)
    known = {k.kek_id: k for k in _known_keks(kek_file, keys)}
    current = known[current.kek_id]
    if new_kek.kek_id == current.kek_id:
        raise ValidationError("the new KEK is the current KEK; nothing to rotate")

    with ctx.engine.connect() as conn:
        in_use = kek_ids_in_use(conn)
        # The audit entry of the rewrap is sealed with the chain key, derived from the
        # audit signing key, which the rewrap itself moves under the new KEK: derive it
        # (it is cached per keyring) while the keyring sealing this engine still opens it.
        audit.chain_key(conn, ctx.keyring)
    unknown = sorted(set(in_use) - set(known) - {new_kek.kek_id})
    if unknown:
        raise KeyUnavailableError(
            f"data keys are wrapped by KEK(s) {', '.join(unknown)}, which no key file beside "
            f"{kek_file} holds; restore them (recovery kit or retired key file) before rotating"
        )

    if not resumed:
        write_kek_file(pending_path(kek_file), new_kek)
    keyring = Keyring([new_kek, *[k for k in known.values() if k.kek_id != new_kek.kek_id]])
    rewrapped_holders = [h.describe() for h in holders if h.rewrap(keyring)]
    by_purpose = _rewrap_all(ctx, keyring, new_kek, current, sorted(in_use), resumed, actor)
    retired = _install_pending(kek_file, current)
    # This process's keyring must stop wrapping new keys with the retired KEK. The
    # configured kms_key_id still names the old key (or a KMS key after a move to a
    # file) until the operator edits it: load with what the new key file is.
    ctx.keyring = Keyring(load_keks(keys.model_copy(update={"kms_key_id": new_kek.kms_key})))
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


def _rewrap_all(ctx: Context, keyring: Keyring, new_kek: Kek, current: Kek, old_ids: list[str],
                resumed: bool, actor: str) -> dict[str, int]:
    """Rewrap every live data key not yet under `new_kek`, all in one transaction."""
    new_kek_id = new_kek.kek_id
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
            "from": "kms" if current.envelope is not None else "file", "from_kms_key": current.kms_key,
            "to": "kms" if new_kek.envelope is not None else "file", "to_kms_key": new_kek.kms_key,
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
        write_kek_file(retired, current)
    pending = pending_path(kek_file)
    pending.chmod(0o600)
    pending.replace(kek_file)
    fsync_dir(kek_file.parent)
    return retired
