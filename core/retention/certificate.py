"""After an erasure: reach every backup repository, and certify what was done.

`erasure.approve` destroys the client's data keys in the database, in one transaction.
The backups hold the keys their snapshots need in each repository's key bag
(core/backup/keybag.py); `complete` rewrites the bag of every configured repository at
once, which drops the erased keys (and records their ids as erased), so no object of
the repository, current or an older version, holds a key the KEK opens any more.

Then it issues the erasure certificate: a statement of who asked, who approved, which
client, which key ids were destroyed and when, how many rows were tombstoned, how many
objects of the client's files were deleted from the live files store, and which
repositories were updated (and which could not be reached, with why), signed with
Ed25519 by the audit signing key (a random seed stored wrapped by the KEK in
`data_keys`; its public half is stored in clear beside it and printed in the
certificate). Ed25519 rather than an HMAC: an auditor checks the signature with the
public key alone, without ever holding a secret that could forge one. The statement is
appended to the audit log (ERASURE_CERTIFICATE, the whole statement and its SHA-256),
so the hash chain fixes it in order, and `verify` checks a certificate both ways: its
signature, and that the log holds the same statement after the erasure's
ERASURE_EXECUTE entry.

A repository that was unreachable gets the erasure at its next backup or prune (both
rewrite the bag under the same lock and drop every erased key); `complete` may be run
again (`strongroom erasure certificate ID --reissue`) to retry and issue a new
certificate. An erasure has reached every copy when a certificate lists no repository
as pending and no snapshot written before the key bag existed (format 1, which carries
its keys inside) remains: `reached_all_copies`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, select

from strongroom.core import audit
from strongroom.core.backup import configurations, keybag
from strongroom.core.backup.manifest import canonical_json
from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, DataKey, ErasureRequest, KeyPurpose, KeyState
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, IntegrityError, NotFoundError, StrongroomError, ValidationError

KIND = "strongroom-erasure-certificate"
VERSION = 1

_log = AuditLog.__table__
_keys = DataKey.__table__
_requests = ErasureRequest.__table__


def reach_repositories(ctx: Context) -> list[dict[str, Any]]:
    """Rewrite the key bag of every configured repository, dropping every key the
    database has destroyed; one entry per configuration (updated, no_repository or
    pending with why). Erasures and the retention job's deletions both call it."""
    from strongroom.core.backup.repository import open_repository
    from strongroom.core.storage import open_target

    copies = []
    for name in configurations.names(ctx.settings):
        cfg = configurations.resolve(ctx.settings, name)
        entry: dict[str, Any] = {"configuration": name}
        try:
            target = open_target(cfg.target)
            entry["target"] = target.describe()
            if not target.exists("config.json"):
                entry.update(status="no_repository")      # nothing was ever backed up there
                copies.append(entry)
                continue
            repo = open_repository(target, ctx.keyring)
            bag = keybag.after_erasure(ctx.engine, repo)
            legacy = sum(1 for i in repo.list_snapshots() if not repo.read_manifest(i).keys_in_bag)
            entry.update(status="updated", repository_id=str(repo.id), key_bag_generation=bag.generation,
                         updated_at=bag.written_at, legacy_snapshots=legacy)
        except StrongroomError as exc:
            entry.update(status="pending", error=str(exc)[:300])
        copies.append(entry)
    return copies


def _execution(conn: Connection, request_id: uuid.UUID) -> tuple[dict, dict]:
    row = conn.execute(select(_requests).where(_requests.c.id == request_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"erasure request {request_id} not found")
    if row["status"] != "executed":
        raise ConflictError(f"erasure request {request_id} is {row['status']}, not executed: there is "
                            "nothing to certify")
    executed = conn.execute(select(_log).where(_log.c.action == "ERASURE_EXECUTE",
                                               _log.c.record_id == str(row["client_id"]))
                            .order_by(_log.c.id.desc())).mappings()
    entry = next((e for e in executed if json.loads(e["details"]).get("request_id") == str(request_id)), None)
    if entry is None:
        raise IntegrityError(f"erasure request {request_id} is executed but the audit log has no "
                             "ERASURE_EXECUTE entry for it")
    return dict(row), dict(entry)


def _signer(conn: Connection, ctx: Context) -> tuple[Any, uuid.UUID, bytes]:
    private = ctx.keyring.signing_key(conn)
    key_id = conn.execute(select(_keys.c.id).where(_keys.c.purpose == KeyPurpose.AUDIT_SIGNING,
                                                   _keys.c.state == KeyState.ACTIVE)
                          .order_by(_keys.c.version.desc()).limit(1)).scalar_one()
    return private, key_id, private.public_key().public_bytes_raw()


def _statement(conn: Connection, request: dict, execute: dict, copies: list[dict]) -> dict[str, Any]:
    details = json.loads(execute["details"])
    keys = conn.execute(select(_keys.c.id, _keys.c.purpose, _keys.c.version, _keys.c.destroyed_at)
                        .where(_keys.c.client_id == request["client_id"]).order_by(_keys.c.id)).all()
    pending = [c["configuration"] for c in copies if c["status"] == "pending"]
    legacy = sum(c.get("legacy_snapshots", 0) for c in copies)
    return {
        "kind": KIND, "version": VERSION,
        "request_id": str(request["id"]), "client_id": str(request["client_id"]),
        "requested_by": request["requested_by"], "requested_at": request["created_at"].isoformat(),
        "approved_by": request["approved_by"], "executed_at": request["executed_at"].isoformat(),
        "destroyed_keys": [{"key_id": str(k.id), "purpose": k.purpose.value, "version": k.version,
                            "destroyed_at": k.destroyed_at.isoformat() if k.destroyed_at else None}
                           for k in keys],
        "rows_tombstoned": {t: details.get(t, 0) for t in ("clients", "therapy_sessions", "client_files")},
        "file_objects": _file_objects(conn, request["id"]),
        "repositories": copies,
        "reached_all_copies": not pending and legacy == 0,
        "audit_execute_entry": {"id": execute["id"], "hash": execute["hash"]},
        "issued_at": utcnow().isoformat(),
    }


def _file_objects(conn: Connection, request_id: uuid.UUID) -> dict[str, int] | None:
    """How many objects of the client's files were deleted from the live files store
    after the erasure (and how many could not be: the integrity job's files check
    removes those); None if nothing was recorded (a crash before the deletes: the
    objects are then orphans for that check too)."""
    rows = conn.execute(select(_log.c.details).where(_log.c.action == "ERASURE",
                                                     _log.c.record_id == str(request_id))
                        .order_by(_log.c.id.desc())).scalars()
    found = next((d for d in map(json.loads, rows) if d.get("event") == "file_objects_deleted"), None)
    if found is None:
        return None
    return {k: found[k] for k in ("files", "objects_deleted", "objects_failed")}


def _digest(statement: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(statement)).hexdigest()


def complete(ctx: Context, request_id: uuid.UUID, *, actor: str) -> dict[str, Any]:
    """Reach every repository with an executed erasure, then issue its certificate
    (appended to the audit log, and returned). Safe to run again."""
    with transaction(ctx.engine, read_only=True) as conn:
        _execution(conn, request_id)                   # refuse early: unknown or not executed
    copies = reach_repositories(ctx)
    with transaction(ctx.engine) as conn:
        request, execute = _execution(conn, request_id)
        private, key_id, public = _signer(conn, ctx)
        statement = _statement(conn, request, execute, copies)
        signature = private.sign(canonical_json(statement))
        certificate = {**statement, "signature": {
            "algorithm": "Ed25519", "key_id": str(key_id), "public_key": base64.b64encode(public).decode(),
            "value": base64.b64encode(signature).decode(), "sha256": _digest(statement)}}
        audit.append(conn, actor=actor, action="ERASURE_CERTIFICATE", table_name="erasure_requests",
                     record_id=request_id, details={"sha256": _digest(statement), "certificate": certificate})
    return certificate


def latest(ctx: Context, request_id: uuid.UUID) -> dict[str, Any]:
    """The newest certificate issued for `request_id` (NotFoundError if none)."""
    with transaction(ctx.engine, read_only=True) as conn:
        row = conn.execute(select(_log.c.details).where(_log.c.action == "ERASURE_CERTIFICATE",
                                                        _log.c.record_id == str(request_id))
                           .order_by(_log.c.id.desc()).limit(1)).scalar()
    if row is None:
        raise NotFoundError(f"no erasure certificate for request {request_id} (is it executed?)")
    return json.loads(row)["certificate"]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    request_id: str
    reason: str | None = None


def parse(data: bytes | str) -> dict[str, Any]:
    """A certificate from its JSON text; ValidationError (not echoing it) if it is not one."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise ValidationError("certificate: not valid JSON") from None
    if not isinstance(document, dict) or document.get("kind") != KIND or \
            not isinstance(document.get("signature"), dict):
        raise ValidationError(f"certificate: not a {KIND}")
    return document


def verify(conn: Connection, certificate: dict[str, Any]) -> Verdict:
    """Check one certificate: the signature under the public key the database holds for
    its key id, and that the audit log holds this very statement (same SHA-256) for the
    same request, after that request's ERASURE_EXECUTE entry with the hash it names."""
    request_id = str(certificate.get("request_id"))
    statement = {k: v for k, v in certificate.items() if k != "signature"}
    sig = certificate["signature"]
    try:
        key_id = uuid.UUID(str(sig["key_id"]))
        value = base64.b64decode(str(sig["value"]), validate=True)
    except (KeyError, ValueError):
        return Verdict(False, request_id, "signature block is malformed")
    public = conn.execute(select(_keys.c.public_key).where(_keys.c.id == key_id,
                                                            _keys.c.purpose == KeyPurpose.AUDIT_SIGNING)).scalar()
    if public is None:
        return Verdict(False, request_id, "signed by a key this database does not know")
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public)).verify(value, canonical_json(statement))
    except InvalidSignature:
        return Verdict(False, request_id, "signature does not verify (altered or forged)")
    digest = _digest(statement)
    logged = conn.execute(select(_log.c.id, _log.c.details).where(
        _log.c.action == "ERASURE_CERTIFICATE", _log.c.record_id == request_id)).all()
    entry = next((r for r in logged if json.loads(r.details).get("sha256") == digest), None)
    if entry is None:
        return Verdict(False, request_id, "the audit log holds no such certificate for this request")
    anchor = certificate.get("audit_execute_entry") or {}
    execute = conn.execute(select(_log.c.hash, _log.c.action).where(_log.c.id == anchor.get("id"))).first()
    if execute is None or execute.action != "ERASURE_EXECUTE" or execute.hash != anchor.get("hash") \
            or not anchor["id"] < entry.id:
        return Verdict(False, request_id, "the erasure's ERASURE_EXECUTE entry is not in the log as named")
    return Verdict(True, request_id)


def verify_all(engine) -> list[Verdict]:  # noqa: ANN001
    """Every certificate the audit log holds, checked as `verify` does."""
    with transaction(engine, read_only=True) as conn:
        rows = conn.execute(select(_log.c.details).where(_log.c.action == "ERASURE_CERTIFICATE")
                            .order_by(_log.c.id)).scalars().all()
        return [verify(conn, json.loads(r)["certificate"]) for r in rows]


def as_text(certificate: dict[str, Any]) -> str:
    """The certificate for a person: what was erased, where, by whom, and the signature."""
    lines = [
        "ERASURE CERTIFICATE (Strongroom)",
        "",
        f"Request            {certificate['request_id']}",
        f"Client             {certificate['client_id']}",
        f"Requested by       {certificate['requested_by']} at {certificate['requested_at']}",
        f"Approved by        {certificate['approved_by']}",
        f"Executed at        {certificate['executed_at']}",
        "",
        "Data keys destroyed (crypto-shredded):",
        *[f"  {k['key_id']}  {k['purpose']} v{k['version']}  destroyed {k['destroyed_at']}"
          for k in certificate["destroyed_keys"]],
        "Rows tombstoned:   " + ", ".join(f"{t} {n}" for t, n in certificate["rows_tombstoned"].items()),
        "File objects:      " + _file_objects_text(certificate.get("file_objects")),
        "",
        "Backup repositories (key bag rewritten, older versions deleted):",
    ]
    for copy in certificate["repositories"]:
        where = copy.get("target", "?")
        if copy["status"] == "updated":
            legacy = copy.get("legacy_snapshots", 0)
            lines.append(f"  {copy['configuration']}: {where}: updated {copy['updated_at']} "
                         f"(key bag generation {copy['key_bag_generation']})"
                         + (f"; {legacy} snapshot(s) from before the key bag still carry keys" if legacy else ""))
        elif copy["status"] == "no_repository":
            lines.append(f"  {copy['configuration']}: {where}: no repository (nothing backed up there)")
        else:
            lines.append(f"  {copy['configuration']}: {where}: PENDING ({copy.get('error', 'unreachable')})")
    sig = certificate["signature"]
    lines += [
        "",
        "Reached every copy: " + ("yes" if certificate["reached_all_copies"] else "NO (see above)"),
        f"Audit entry        ERASURE_EXECUTE #{certificate['audit_execute_entry']['id']} "
        f"{certificate['audit_execute_entry']['hash']}",
        f"Issued at          {certificate['issued_at']}",
        f"Signature          {sig['algorithm']} by key {sig['key_id']}",
        f"Public key         {sig['public_key']}",
        f"Statement SHA-256  {sig['sha256']}",
        f"Signature value    {sig['value']}",
    ]
    return "\n".join(lines) + "\n"


def _file_objects_text(counts: dict | None) -> str:
    if counts is None:
        return "not recorded (the integrity job's files check removes any left)"
    text = f"{counts['objects_deleted']} deleted from the live files store ({counts['files']} files)"
    if counts["objects_failed"]:
        text += f"; {counts['objects_failed']} could not be deleted (left for the integrity job to remove)"
    return text


def as_pdf(certificate: dict[str, Any], *, practice: str = "Strongroom") -> bytes:
    """The same text as a PDF for handing over, on the writer every Strongroom document
    uses (core.pdf: embedded Unicode fonts, so a person's name prints as it is spelled;
    the practice, the marking and "page N of M" on every page)."""
    from datetime import datetime

    from strongroom.core.pdf import Header, Writer

    header = Header(title="Erasure certificate", practice=practice,
                    produced_by=str(certificate.get("approved_by") or "Strongroom"),
                    produced_at=datetime.fromisoformat(certificate["issued_at"]),
                    settings=(("request", str(certificate["request_id"])),
                              ("signature", str(certificate["signature"]["algorithm"]))))
    writer = Writer(header, font_size=8.0)
    for line in as_text(certificate).splitlines():
        writer.paragraph(line or " ")
    return writer.output()
