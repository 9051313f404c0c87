"""Signed checkpoints of the audit chain's head, kept where the database cannot reach.

Whoever can write the database can cut the newest audit entries: the shorter chain
still links and every seal on it is still valid. Only a record of the head made earlier
and kept elsewhere shows the cut. `take` signs the head (its own audit entry included,
core.audit.checkpoint) and `publish`es it to:

- every backup repository that exists, as `audit/checkpoints/<head id>.json`: written
  once and never replaced (with S3 Object Lock, locked like the snapshots), so the
  database administrator, who holds no storage credentials, can neither remove nor
  rewrite it;
- `[audit] checkpoint_file`, if set (replaced atomically, mode 0600): a disk or mount
  the database's administrator cannot write.

The daemon takes one on a schedule while the log grows, after every backup, and at
shutdown; `strongroom audit checkpoint` takes one by hand. `newest` reads them all
back and keeps the highest head whose signature the KEK-held signing key accepts, so a
planted file proves nothing; `audit verify` and the integrity job compare the chain
against it and report the entries missing after it.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from strongroom.core import audit
from sqlalchemy import select

from strongroom.core.backup import configurations
from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.errors import IntegrityError, StrongroomError
from strongroom.core.fsutil import write_atomic
from strongroom.core.storage import open_target

log = logging.getLogger("strongroom.checkpoints")
PREFIX = "audit/checkpoints/"
REPOSITORY_CONFIG = "config.json"
audit_log = audit.AuditLog.__table__


def _name(cp: dict) -> str:
    return f"{PREFIX}{int(cp['head_id'] or 0):020d}.json"


def _encode(cp: dict) -> bytes:
    return (json.dumps(cp, indent=2, sort_keys=True) + "\n").encode()


def _targets(ctx: Context) -> dict[str, object]:
    """The backup configurations' repository targets that hold a repository already
    (a checkpoint must not make an empty target look like a damaged repository)."""
    found: dict[str, object] = {}
    for name in configurations.names(ctx.settings):
        url = configurations.resolve(ctx.settings, name).target
        if url in found:
            continue
        try:
            target = open_target(url)
            if target.exists(REPOSITORY_CONFIG):
                found[url] = target
        except StrongroomError as exc:
            log.warning("checkpoint: backup target unavailable", extra={"configuration": name, "error": str(exc)})
    return found


def publish(ctx: Context, cp: dict, targets: dict[str, object] | None = None) -> list[str]:
    """Write `cp` to every place outside the database; returns where it was written.
    A place that fails is logged and skipped: the others still hold it."""
    places = []
    data = _encode(cp)
    for target in (_targets(ctx) if targets is None else targets).values():
        try:
            target.put_if_absent(_name(cp), data)
            places.append(target.describe())
        except StrongroomError as exc:
            log.warning("checkpoint not written to a backup repository", extra={"error": str(exc)})
    path = ctx.settings.audit.checkpoint_file
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data, mode=0o600)
            places.append(str(path))
        except OSError as exc:
            log.warning("checkpoint file not written", extra={"error": exc.strerror or str(exc)})
    return places


def take(ctx: Context, *, actor: str, reason: str) -> dict:
    """Sign the head (after appending the checkpoint's own entry) and publish it.

    Refused (IntegrityError) when the log no longer holds the newest stored checkpoint's
    entry: a new checkpoint would replace the evidence of the cut in the checkpoint file
    and bless the shorter log. One query, not a full verify, so it is cheap at shutdown."""
    targets = _targets(ctx)          # opened once for the check and the publishing
    previous = newest(ctx, targets)
    if previous is not None and previous.get("head_id") is not None:
        with ctx.engine.connect() as conn:
            stored = conn.execute(select(audit_log.c.hash).where(audit_log.c.id == previous["head_id"])).scalar()
        if stored != previous["head_hash"]:
            raise IntegrityError(f"the audit log no longer holds entry {previous['head_id']} as checkpointed at "
                                 f"{previous['signed_at']} (cut or rewritten); no new checkpoint replaces that "
                                 "evidence: run `strongroom audit verify`")
    with transaction(ctx.engine) as conn:
        cp = audit.checkpoint(conn, ctx.keyring, actor=actor, reason=reason)
    cp["places"] = publish(ctx, cp, targets)
    return cp


def _candidates(ctx: Context, targets: dict[str, object]) -> list[dict]:
    found = []
    for target in targets.values():
        try:
            names = sorted(k for k in target.list(PREFIX) if k.endswith(".json"))
            if names:
                found.append(json.loads(target.get(names[-1])))
        except (StrongroomError, ValueError) as exc:
            log.warning("checkpoint in a backup repository unreadable", extra={"error": str(exc)[:200]})
    path: Path | None = ctx.settings.audit.checkpoint_file
    if path is not None and path.exists():
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            log.warning("checkpoint file unreadable")
    return [cp for cp in found if isinstance(cp, dict)]


def newest(ctx: Context, targets: dict[str, object] | None = None) -> dict | None:
    """The checkpoint with the highest head among those whose signature the KEK-held
    signing key accepts (a file someone planted proves nothing), or None."""
    with ctx.engine.connect() as conn:
        if not audit.signing_key_exists(conn):
            return None
        public = ctx.keyring.signing_key(conn).public_key().public_bytes_raw()
    valid = []
    for cp in _candidates(ctx, _targets(ctx) if targets is None else targets):
        try:
            audit.check_signature(cp, public)
            valid.append(cp)
        except IntegrityError:
            log.warning("a stored checkpoint's signature does not verify; ignored")
    return max(valid, key=lambda c: int(c.get("head_id") or 0), default=None)


def summary(cp: dict | None) -> dict | None:
    """What a verdict says of the checkpoint it used (no signature, no places)."""
    return None if cp is None else {k: cp.get(k) for k in ("head_id", "head_hash", "signed_at", "key_id")}


def verify_against_newest(ctx: Context, *, progress=None) -> tuple[audit.VerifyResult, dict | None]:
    """The chain verified with seals, and against the newest stored checkpoint if any."""
    cp = newest(ctx)
    if cp is None:
        return audit.verify(ctx.engine, keyring=ctx.keyring, progress=progress), None
    return audit.verify_checkpoint(ctx.engine, cp, keyring=ctx.keyring, progress=progress), cp
