"""Encryption levels: the source's names (none, standard, high, military) mapped to
concrete, checkable settings, per practice.

A level is a list of requirements, each checked against the running configuration and
database with its evidence, never a promise:

- standard (today's, and the floor): every client's records sealed with AES-256-GCM
  under a data key of their own (so erasure by crypto-shredding works), data keys kept
  only wrapped by a key-encryption key (KEK) that is never in the database or the
  config file and is kept private.
- high: standard, plus backups to an immutable copy (at least one backup configuration
  on S3 with Object Lock, `object_lock_days`, so ransomware or an insider cannot delete
  or rewrite it within the lock) and key-bag separation (snapshots never hold a data
  key: the keys live in the repository's key bag, which an erasure rewrites, so an
  erasure reaches every backup; true of every repository this release writes).
- military: high, plus the KEK held in a key management service (AWS KMS: it never
  leaves it) and four-eyes approval of every export that carries PHI.
- none is refused: Strongroom never stores PHI unencrypted, and no level may be weaker
  than today's default.

Setting a level that the running configuration does not meet is refused, naming each
unmet requirement and what would meet it; the compliance report shows the level in
force and its evidence, and fails the check when the configuration later falls short.
The level is a practice setting (`practices.settings`), so it travels to every site.
"""
from __future__ import annotations

import stat
import uuid
from dataclasses import asdict, dataclass
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Connection, func, select, update

from strongroom.core import audit
from strongroom.core.config import Settings
from strongroom.core.db.models import Client, DataKey, KeyState, Practice
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, ValidationError
from strongroom.core.repository.changes import next_change_version, row_checksum

LEVELS = ("standard", "high", "military")
DEFAULT = "standard"
_practices = Practice.__table__


@dataclass(frozen=True)
class Requirement:
    level: str          # the lowest level that asks for it
    name: str
    met: bool
    evidence: dict
    fix: str


def _kek_source(settings: Settings) -> dict:
    """Where the KEK comes from, as configured (names and paths, never a key)."""
    keys = settings.keys
    kms = getattr(keys, "kms_key_id", None)
    if kms:
        return {"source": "kms", "kms_key": str(kms)}
    return {"source": "credential, environment or file", "credential": keys.kek_credential,
            "environment": keys.kek_env, "file": str(keys.kek_file) if keys.kek_file else None}


def keys_shared_by_clients(conn: Connection) -> int:
    """Data keys that seal more than one live client (erasure by crypto-shredding needs none)."""
    clients = Client.__table__
    return conn.execute(select(func.count()).select_from(
        select(clients.c.key_id).where(clients.c.deleted_at.is_(None)).group_by(clients.c.key_id)
        .having(func.count() > 1).subquery())).scalar_one()


def kek_file_mode(settings: Settings) -> int | None:
    """The KEK file's permission bits, or None without one."""
    kek = settings.keys.kek_file
    return stat.S_IMODE(kek.stat().st_mode) if kek is not None and kek.exists() else None


def _standard(settings: Settings, conn: Connection) -> list[Requirement]:
    clients, keys = Client.__table__, DataKey.__table__
    shared = keys_shared_by_clients(conn)
    live = conn.execute(select(func.count()).select_from(clients.join(keys, clients.c.key_id == keys.c.id))
                        .where(clients.c.deleted_at.is_(None), keys.c.state != KeyState.DESTROYED)).scalar_one()
    mode = kek_file_mode(settings)
    private = mode is None or not mode & 0o077
    return [
        Requirement("standard", "each client's records sealed with AES-256-GCM under a data key of their own",
                    shared == 0, {"cipher": "AES-256-GCM", "live_clients_with_keys": live,
                                  "keys_shared_by_several_clients": shared},
                    "rotate the affected clients' keys (strongroom keys rotate-deks)"),
        Requirement("standard", "data keys stored only wrapped by a KEK kept outside the database, private",
                    private, {**_kek_source(settings), "kek_file_mode": f"{mode:04o}" if mode is not None else None},
                    "chmod 600 the key file, or load the KEK as a systemd credential"),
    ]


def _object_lock_days(target: str) -> int | None:
    parts = urlsplit(target)
    if parts.scheme != "s3":
        return None
    value = parse_qs(parts.query).get("object_lock_days", [None])[0]
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def _high(settings: Settings) -> list[Requirement]:
    from strongroom.core.backup import configurations
    locked = {}
    for name in configurations.names(settings):
        target = configurations.resolve(settings, name).target
        locked[name] = _object_lock_days(target)
    immutable = sorted(name for name, days in locked.items() if days)
    return [
        Requirement("high", "backups kept on an immutable copy (S3 Object Lock)", bool(immutable),
                    {"configurations": {n: (f"s3 object lock {d} days" if d else "no object lock")
                                        for n, d in locked.items()}},
                    "add a backup configuration whose target is s3://BUCKET/PREFIX?object_lock_days=N on a bucket "
                    "created with Object Lock ([backup.configurations.NAME] target)"),
        Requirement("high", "key-bag separation: snapshots hold no data key, so an erasure reaches every backup",
                    True, {"repository_format": "data keys in the key bag (keys/bag), never in a snapshot"},
                    ""),
    ]


def _military(settings: Settings) -> list[Requirement]:
    source = _kek_source(settings)
    four_eyes = False      # this release has no four-eyes path for exports (prune and erasure have one)
    return [
        Requirement("military", "the KEK held in a key management service (AWS KMS), never leaving it",
                    source["source"] == "kms", {"kek": source},
                    "move the KEK into KMS: strongroom keys rotate-kek --to kms --kms-key-id ARN"),
        Requirement("military", "four-eyes approval of every export carrying PHI", four_eyes,
                    {"four_eyes_phi_exports": four_eyes},
                    "four-eyes approval of PHI exports is not available in this release, so this level "
                    "cannot be met yet"),
    ]


def requirements(settings: Settings, conn: Connection, level: str) -> list[Requirement]:
    """Every requirement of `level` (and of the levels below it), checked now."""
    _check_level(level)
    out = _standard(settings, conn)
    if level in ("high", "military"):
        out += _high(settings)
    if level == "military":
        out += _military(settings)
    return out


def _check_level(level: object) -> str:
    if level == "none":
        raise ValidationError("encryption level none is not offered: Strongroom never stores PHI unencrypted, "
                              "and no level may be weaker than standard")
    if level not in LEVELS:
        raise ValidationError(f"encryption level: must be one of {', '.join(LEVELS)}")
    return level


def level_in_force(conn: Connection, practice_id: uuid.UUID) -> str:
    row = conn.execute(select(_practices.c.settings).where(_practices.c.id == practice_id)).scalar()
    return (row or {}).get("encryption_level", DEFAULT)


def status(settings: Settings, conn: Connection, practice_id: uuid.UUID) -> dict:
    """The level in force, whether it is met now, and every requirement with evidence."""
    level = level_in_force(conn, practice_id)
    checked = requirements(settings, conn, level)
    return {"level": level, "met": all(r.met for r in checked), "requirements": [asdict(r) for r in checked],
            "levels": list(LEVELS)}


def set_level(settings: Settings, conn: Connection, practice_id: uuid.UUID, level: str, *, actor: str) -> dict:
    """Put `level` in force for the practice; refused, changing nothing, unless the
    running configuration meets every requirement (the error names the unmet ones)."""
    _check_level(level)
    unmet = [r for r in requirements(settings, conn, level) if not r.met]
    if unmet:
        raise ConflictError(f"encryption level {level} is not met by this configuration: "
                            + "; ".join(f"{r.name} (to meet it: {r.fix})" for r in unmet))
    row = conn.execute(select(_practices).where(_practices.c.id == practice_id)).mappings().first()
    if row is None:
        raise ValidationError("no such practice")
    before = (row["settings"] or {}).get("encryption_level", DEFAULT)
    new = dict(row)
    new["settings"] = {**(row["settings"] or {}), "encryption_level": level}
    new["updated_at"] = utcnow()
    new["sync_version"] = next_change_version(conn)
    new["data_checksum"] = row_checksum(new)
    conn.execute(update(_practices).where(_practices.c.id == practice_id)
                 .values(settings=new["settings"], updated_at=new["updated_at"], sync_version=new["sync_version"],
                         data_checksum=new["data_checksum"]))
    audit.append(conn, actor=actor, action="CONFIG", table_name="practices", record_id=practice_id,
                 details={"event": "encryption_level", "from": before, "to": level})
    return status(settings, conn, practice_id)
