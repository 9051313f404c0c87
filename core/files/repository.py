"""Client files: add, list, get and remove, each permission-checked and audited.

A file's name is PHI: it is sealed into `file_name_enc` with the client's key (AAD
naming table, column and row) and never appears in an audit entry, a log line or an
error message. Its content never enters the database (core/files/content.py). Adding
is two steps so content can stream in from anywhere (the control socket, a local
file): `begin_add` checks permission, the client, the name, the type and the declared
size against `[files]` before anything is written; the returned Upload takes the bytes;
`commit_add` inserts the row (and its CREATE entry) only after every object is stored.
A crash between the two leaves objects no row names (orphans), never a row without
content. Removing tombstones the row (as every synced table does, so the delete
reaches peers and backups) and then deletes the objects.

Malware scanning (core/files/scan.py, `[files] scanner = "clamd"`): the plaintext is
streamed to clamd as it arrives, before it is sealed, so a file is scanned without
being held or spooled. At commit the verdict decides: clean -> the row is inserted
`clean`; infected -> the content is deleted, no row is kept, and a `malware_found`
security event (file id, client id, signature; never the name) is recorded and audited;
no verdict (clamd down, timed out, or refusing the stream, e.g. over its size limit) ->
the row is inserted `pending`. A file that is not `clean` is quarantined while scanning
is on: `open_file` serves it only to `files:quarantine:read`. `rescan_file` scans a
stored file later (the files_rescan job): clean -> `clean`; infected -> the row is
tombstoned with status `infected` and its content deleted, with the same event.
"""
from __future__ import annotations

import functools
import logging
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from sqlalchemy import Connection, Engine, func, insert, select, update

from strongroom.core import audit
from strongroom.core.auth import security
from strongroom.core.auth.profiles import check_quota
from strongroom.core.config import AuthSettings, FilesSettings
from strongroom.core.crypto.fields import FieldCipher, associated_data
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client, ClientFile, DataKey, KeyState
from strongroom.core.db.types import utcnow
from strongroom.core.fsutil import StreamedFile
from strongroom.core.errors import CryptoError, IntegrityError, NotFoundError, PermissionDenied, ValidationError
from strongroom.core.files.content import ContentWriter, StoredContent, object_keys, read_chunks, read_manifest
from strongroom.core.files.scan import (CLEAN, INFECTED, PENDING, Clamd, MalwareFound, ScannerUnavailable,
                                        ScanRefused, Stream, Verdict, scanner_state)
from strongroom.core.ids import new_id
from strongroom.core.masking import REDACTED
from strongroom.core.principal import Principal
from strongroom.core.repository.changes import next_change_version, row_checksum
from strongroom.core.storage.base import Target

log = logging.getLogger(__name__)

TABLE = "client_files"
QUARANTINE_PERMISSION = "files:quarantine:read"
MAX_NAME_BYTES = 255
MAX_DESCRIPTION = 1000
_files, _clients, _keys = ClientFile.__table__, Client.__table__, DataKey.__table__


def _require(principal: Principal, *permissions: str) -> None:
    for permission in permissions:
        if not principal.can(permission):
            raise PermissionDenied(f"{principal.actor} lacks permission {permission}")


def validate_name(name: object) -> str:
    """A file name as stored: one path segment, printable, at most 255 UTF-8 bytes.
    The errors say what is wrong, never the name (it is PHI)."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("file name is empty")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise ValidationError("file name contains a control character")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ValidationError("file name must be a bare name, without a path or '..'")
    if name != name.strip():
        raise ValidationError("file name starts or ends with white space")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ValidationError(f"file name is longer than {MAX_NAME_BYTES} bytes")
    return name


def validate_type(settings: FilesSettings, content_type: object) -> str:
    """A content type `[files] allowed_types` admits (case-folded)."""
    if not isinstance(content_type, str) or not content_type:
        raise ValidationError("content type is empty")
    kind = content_type.strip().lower()
    if len(kind) > 120 or kind.count("/") != 1 or not all(
            part and all(ch.isascii() and (ch.isalnum() or ch in "!#$&^_.+-") for ch in part)
            for part in kind.split("/")):
        raise ValidationError("content type must look like type/subtype")
    if not any(fnmatchcase(kind, allowed) for allowed in settings.allowed_types):
        raise ValidationError(f"content type {kind} is not allowed here ([files] allowed_types: "
                              f"{', '.join(settings.allowed_types)})")
    return kind


def validate_size(settings: FilesSettings, size: object) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValidationError("file size must be a whole number of bytes")
    if size == 0:
        raise ValidationError("the file is empty: nothing to store")
    if size > settings.max_bytes:
        raise ValidationError(f"the file is {size} bytes; the limit is {settings.max_bytes} ([files] max_bytes)")
    return size


@dataclass
class Upload:
    """A file being added: its id is fixed, its bytes arrive through `write`."""

    file_id: uuid.UUID
    client_id: uuid.UUID
    practice_id: uuid.UUID
    cipher: FieldCipher
    name: str
    content_type: str
    declared_size: int
    writer: ContentWriter
    stored: StoredContent | None = field(default=None)
    scan: Stream | None = field(default=None)   # the clamd stream, None once it failed or without scanning
    scan_note: str | None = field(default=None)  # why there is no verdict (for the caller; no content)

    @property
    def received(self) -> int:
        return self.writer.size

    def write(self, data: bytes) -> None:
        """More content; refused (and everything stored so far deleted) past the declared size."""
        if self.writer.size + len(data) > self.declared_size:
            self.abort()
            raise ValidationError(f"more content than the declared {self.declared_size} bytes: upload abandoned")
        if self.scan is not None:          # scanned before it is sealed, from the same bytes
            try:
                self.scan.send(data)
            except ScannerUnavailable as exc:
                self._lose_scan(str(exc))
        self.writer.write(data)

    def verdict(self) -> Verdict | None:
        """clamd's verdict on everything written, or None (the file stays pending)."""
        if self.scan is None:
            return None
        try:
            return self.scan.finish()
        except (ScannerUnavailable, ScanRefused) as exc:
            self._lose_scan(str(exc))
            return None

    def _lose_scan(self, note: str) -> None:
        if self.scan is not None:
            self.scan.close()
        self.scan, self.scan_note = None, note

    def abort(self) -> None:
        """Undo a failed or cancelled add. Called while an error is on its way out: a
        failure here is logged, never raised, so the caller learns why the add failed;
        what stays behind has no row and the next integrity run removes it as an orphan."""
        try:
            if self.scan is not None:
                self.scan.close()
        except Exception as exc:   # noqa: BLE001 - see above
            log.warning("could not close an aborted upload's scan", extra={"error": type(exc).__name__})
        self.writer.abort()     # logs, never raises, a store that refuses its deletes


def begin_add(conn: Connection, keyring: Keyring, principal: Principal, target: Target,
              settings: FilesSettings, client_id: uuid.UUID, *, name: str, content_type: str,
              size: int, description: str | None = None, auth: AuthSettings | None = None,
              scanner: Clamd | None = None) -> Upload:
    """Check everything an add needs before any byte is stored; returns the Upload.
    With `auth`, the adding user's storage quota is checked too (core.auth.profiles).
    With `scanner`, the content is streamed to clamd as it is written; if clamd cannot
    be reached the add goes on and the file stays pending."""
    _require(principal, f"table:{TABLE}:write")
    name = validate_name(name)
    content_type = validate_type(settings, content_type)
    size = validate_size(settings, size)
    if auth is not None:
        check_quota(conn, auth, principal.user_id, size)
    if description is not None and (len(description) > MAX_DESCRIPTION or any(
            unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in description)):
        raise ValidationError(f"description is longer than {MAX_DESCRIPTION} characters or has control characters")
    practice_id = conn.execute(select(_clients.c.practice_id).where(
        _clients.c.id == client_id, _clients.c.deleted_at.is_(None))).scalar()
    if practice_id is None:
        raise NotFoundError(f"client {client_id} not found")
    cipher = keyring.client_cipher(conn, client_id)
    file_id = new_id()
    extra = {"description": description} if description else {}
    writer = ContentWriter(target, cipher, keyring.blind_indexer(conn), file_id,
                           compress=settings.compress, extra=extra)
    upload = Upload(file_id, client_id, practice_id, cipher, name, content_type, size, writer)
    if scanner is not None:
        try:
            upload.scan = scanner.instream()
        except ScannerUnavailable as exc:
            upload.scan_note = str(exc)
    return upload


def commit_add(conn: Connection, principal: Principal, upload: Upload) -> dict:
    """Finish storing the content, then insert the row and its CREATE entry. If the
    row cannot be written the stored objects are deleted again. A file clamd found
    infected is not kept: its content is deleted, a `malware_found` security event is
    written in `conn`, and the result says `infected` with `refused` true (the caller
    commits that and then refuses: see `refuse_if_infected`)."""
    if upload.received != upload.declared_size:
        upload.abort()
        raise ValidationError(f"received {upload.received} of the declared {upload.declared_size} bytes: "
                              "upload abandoned")
    verdict = upload.verdict()
    if verdict is not None and verdict.status == INFECTED:
        upload.abort()
        _malware_event(conn, principal, upload.file_id, upload.client_id, verdict.signature, when="add")
        return {"id": upload.file_id, "client_id": upload.client_id, "size_bytes": upload.received,
                "content_type": upload.content_type, "virus_scan_status": INFECTED, "refused": True,
                "signature": verdict.signature}
    status = CLEAN if verdict is not None else PENDING
    stored = upload.stored = upload.writer.finish()
    try:
        live = conn.execute(select(_clients.c.id).where(_clients.c.id == upload.client_id,
                                                        _clients.c.deleted_at.is_(None))).scalar()
        if live is None:
            raise NotFoundError(f"client {upload.client_id} not found")
        now = utcnow()
        row = {
            "id": upload.file_id, "practice_id": upload.practice_id, "client_id": upload.client_id,
            "key_id": upload.cipher.key_id,
            "file_name_enc": upload.cipher.encrypt(upload.name.encode(),
                                                   associated_data(TABLE, "file_name", upload.file_id)),
            "content_type": upload.content_type, "size_bytes": stored.size, "storage_key": stored.storage_key,
            "sha256": stored.digest, "uploaded_by": principal.user_id, "virus_scan_status": status,
            "created_at": now, "updated_at": now, "sync_version": next_change_version(conn), "deleted_at": None,
        }
        row["data_checksum"] = row_checksum(row)
        conn.execute(insert(_files), [row])
        _audit(conn, principal, "CREATE", upload.file_id, {"client_id": str(upload.client_id),
                                                           "size_bytes": stored.size,
                                                           "content_type": upload.content_type,
                                                           "chunks": stored.chunks,
                                                           "virus_scan_status": status})
    except BaseException:
        upload.abort()
        raise
    result = {"id": upload.file_id, "client_id": upload.client_id, "size_bytes": stored.size,
              "content_type": upload.content_type, "virus_scan_status": status}
    if upload.scan_note:
        result["scan_note"] = upload.scan_note
    return result


def refuse_if_infected(result: dict) -> dict:
    """MalwareFound for a `commit_add` result that refused the file; else the result.
    Call it after the transaction holding the security event has committed."""
    if result.get("refused"):
        raise MalwareFound(f"file {result['id']} refused: clamd found {result['signature']}; "
                           "its content was deleted and the event recorded")
    return result


def _malware_event(conn: Connection, principal: Principal, file_id: uuid.UUID, client_id: uuid.UUID,
                   signature: str | None, *, when: str) -> None:
    """A security event (mirrored into the audit chain) naming the file by id only."""
    security.record(conn, "malware_found", severity="high",
                    description=f"client file {file_id} refused: malware found on {when}",
                    details={"file_id": str(file_id), "client_id": str(client_id), "signature": signature,
                             "found_on": when},
                    actor=principal.actor, session_id=principal.session_id, ip_address=principal.ip_address,
                    user_agent=principal.user_agent, table_name=TABLE, record_id=file_id)


def add_file(conn: Connection, keyring: Keyring, principal: Principal, target: Target,
             settings: FilesSettings, client_id: uuid.UUID, *, name: str, content_type: str,
             size: int, content: Iterable[bytes], description: str | None = None,
             scanner: Clamd | None = None) -> dict:
    """`begin_add`, the content in pieces, `commit_add`: one call for in-process callers
    (an infected file's result says `refused`; see `refuse_if_infected`)."""
    upload = begin_add(conn, keyring, principal, target, settings, client_id, name=name,
                       content_type=content_type, size=size, description=description, scanner=scanner)
    try:
        for piece in content:
            upload.write(piece)
    except BaseException:
        upload.abort()
        raise
    return commit_add(conn, principal, upload)


def _audit(conn: Connection, principal: Principal, action: str, file_id: uuid.UUID | None, details: dict) -> None:
    audit.append(conn, actor=principal.actor, action=action, table_name=TABLE, record_id=file_id,
                 details=details, session_id=principal.session_id, ip_address=principal.ip_address,
                 user_agent=principal.user_agent)


def _cipher_for(conn: Connection, keyring: Keyring, client_id: uuid.UUID):
    """The opener of a file's objects: only data keys of this file's client (a key id
    in a stored object is data from the store, not to be trusted to pick any key), all
    unwrapped now, so a stream of chunks needs no database connection once opened.
    A file moved here by a duplicate-client merge (core.reconcile.merge) stays sealed
    with the duplicate's key: the keys of clients merged with this one count too."""
    from strongroom.core.reconcile.repository import merged_with
    owners = [client_id, *merged_with(conn, client_id)]
    ids = conn.execute(select(_keys.c.id).where(_keys.c.client_id.in_(owners),
                                                 _keys.c.state != KeyState.DESTROYED)).scalars().all()
    allowed = {key_id: keyring.cipher(conn, key_id) for key_id in ids}

    def cipher_for(key_id: uuid.UUID) -> FieldCipher:
        cipher = allowed.get(key_id)
        if cipher is None:
            raise CryptoError(f"data key {key_id} is not a live key of this client")
        return cipher
    return cipher_for


def _live_row(conn: Connection, file_id: uuid.UUID) -> dict:
    row = conn.execute(select(_files).where(_files.c.id == file_id, _files.c.deleted_at.is_(None))).mappings().first()
    if row is None:
        raise NotFoundError(f"file {file_id} not found")
    return dict(row)


def list_files(conn: Connection, keyring: Keyring, principal: Principal, target: Target,
               client_id: uuid.UUID, *, limit: int = 200) -> list[dict]:
    """A client's live files, newest first. Names (and descriptions, kept in each
    file's sealed manifest) only for `phi:read`, audited as one READ; masked otherwise."""
    _require(principal, f"table:{TABLE}:read")
    rows = conn.execute(select(_files).where(_files.c.client_id == client_id, _files.c.deleted_at.is_(None))
                        .order_by(_files.c.created_at.desc(), _files.c.id).limit(limit)).mappings().all()
    reveal = principal.can("phi:read")
    cipher_for = _cipher_for(conn, keyring, client_id)
    out = []
    for row in rows:
        name = description = REDACTED
        if reveal:
            name = keyring.cipher(conn, row["key_id"]).decrypt_text(row["file_name_enc"], TABLE, "file_name", row["id"])
            try:
                description = read_manifest(target, cipher_for, row["id"], row["storage_key"]).get("description")
            except IntegrityError:
                description = None   # `files get` names the damage; a listing still lists
        out.append({"id": row["id"], "client_id": row["client_id"], "name": name, "description": description,
                    "content_type": row["content_type"], "size_bytes": row["size_bytes"],
                    "virus_scan_status": row["virus_scan_status"], "created_at": row["created_at"],
                    "uploaded_by": row["uploaded_by"]})
    if reveal and rows:
        _audit(conn, principal, "READ", client_id, {"count": len(rows), "phi": True, "by_client": True,
                                                    "fields": ["file_name", "description"]})
    return out


@dataclass
class Download:
    """An opened file: its metadata and its content as a lazy stream of plaintext chunks."""

    file_id: uuid.UUID
    client_id: uuid.UUID
    name: str
    content_type: str
    size: int
    chunks: Iterator[bytes]
    # the same stream opened afresh; reuse=True: chunks are views of reused buffers,
    # each good until the next is taken (content.read_chunks), for `save_download`
    reopen: Callable[..., Iterator] | None = field(default=None, repr=False)


def save_download(download: Download, out: Path) -> int:
    """Write an opened file's content to `out` whole or not at all: into a temporary
    file beside it (0600) that is fsynced and renamed over `out` only after the last
    chunk, which content.read_chunks hands out only once the whole content matched its
    recorded size and hash; any failure removes the temporary file and raises. Chunks
    are written as they are opened (buffers reused, the disk writing behind: see
    fsutil.StreamedFile), so memory stays flat and the closing fsync is short. Takes
    the download's stream, which must not have been started; returns the bytes written."""
    with StreamedFile(out) as sink:
        write_download(download, sink.write)
        sink.commit()
    return sink.size


def write_download(download: Download, write: Callable[[memoryview], object]) -> None:
    """Hand an opened file's content to `write` a chunk at a time, each a view of a
    reused buffer (content.read_chunks with `reuse`), so `write` must copy or write it
    out before it returns; the last chunk comes only once the whole content matched its
    recorded size and hash. The reading stops (its threads too) however this ends.
    Takes the download's stream, which must not have been started."""
    chunks = download.reopen(reuse=True) if download.reopen is not None else download.chunks
    try:
        for chunk in chunks:
            write(chunk)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def open_file(conn: Connection, keyring: Keyring, principal: Principal, target: Target,
              file_id: uuid.UUID, *, quarantine: bool = False) -> Download:
    """Open a file for reading (needs read and `phi:read`: the content is PHI), audited
    as a READ. The manifest is checked here, so a missing or tampered one is refused
    before anything is handed out; each chunk is authenticated as it is read, and the
    whole checked against the row after the last (see content.read_chunks). The stream
    needs no database connection: it may be read after the transaction has ended.
    With `quarantine` (scanning is on), a file not scanned clean is served only to
    `files:quarantine:read`, and that READ says so."""
    _require(principal, f"table:{TABLE}:read", "phi:read")
    row = _live_row(conn, file_id)
    quarantined = quarantine and row["virus_scan_status"] != CLEAN
    if quarantined and not principal.can(QUARANTINE_PERMISSION):
        raise PermissionDenied(f"file {file_id} is quarantined (virus scan {row['virus_scan_status']}); "
                               f"serving it needs {QUARANTINE_PERMISSION}")
    cipher_for = _cipher_for(conn, keyring, row["client_id"])
    read_manifest(target, cipher_for, file_id, row["storage_key"])
    name = keyring.cipher(conn, row["key_id"]).decrypt_text(row["file_name_enc"], TABLE, "file_name", file_id)
    _audit(conn, principal, "READ", file_id, {"client_id": str(row["client_id"]), "phi": True, "content": True,
                                              "size_bytes": row["size_bytes"],
                                              **({"quarantined": row["virus_scan_status"]} if quarantined else {})})
    reopen = functools.partial(read_chunks, target, cipher_for, file_id, row["storage_key"], size=row["size_bytes"],
                               digest=row["sha256"], indexer=keyring.blind_indexer(conn))
    return Download(file_id, row["client_id"], name, row["content_type"], row["size_bytes"], reopen(), reopen)


def remove_file(conn: Connection, keyring: Keyring, principal: Principal, target: Target,
                file_id: uuid.UUID) -> list[str]:
    """Tombstone the row (audited DELETE) and return the keys of its objects, which the
    caller deletes with `delete_objects` once this transaction has committed: a crash
    in between leaves orphan objects (found by the integrity job), never a live row
    whose content is gone."""
    _require(principal, f"table:{TABLE}:delete")
    row = _live_row(conn, file_id)
    now = utcnow()
    values = {"deleted_at": now, "updated_at": now, "sync_version": next_change_version(conn)}
    values["data_checksum"] = row_checksum({**row, **values})
    conn.execute(update(_files).where(_files.c.id == file_id).values(**values))
    _audit(conn, principal, "DELETE", file_id, {"client_id": str(row["client_id"]), "tombstone": True})
    return object_keys(target, _cipher_for(conn, keyring, row["client_id"]), file_id, row["storage_key"])


def delete_objects(target: Target, keys: list[str]) -> int:
    """Delete a removed file's objects (chunks first, the manifest last); returns how many."""
    for key in keys:
        target.delete(key)
    return len(keys)


def pending_files(conn: Connection, *, limit: int) -> list[uuid.UUID]:
    """Live files waiting for a scan, oldest first."""
    return list(conn.execute(select(_files.c.id).where(_files.c.deleted_at.is_(None),
                                                       _files.c.virus_scan_status == PENDING)
                             .order_by(_files.c.created_at, _files.c.id).limit(limit)).scalars())


def rescan_file(engine: Engine, keyring: Keyring, principal: Principal, target: Target, scanner: Clamd,
                file_id: uuid.UUID) -> str:
    """Scan a stored pending file (read back a chunk at a time, each authenticated) and
    record the verdict; returns the file's status afterwards. Clean -> `clean` (audited
    UPDATE). Infected -> tombstoned with status `infected` and a `malware_found` event,
    then its objects deleted. Raises ScannerUnavailable or ScanRefused (the file stays
    pending) and IntegrityError if the stored content does not authenticate. The scan
    runs outside any transaction; the row is re-read before it is changed, so a file
    removed meanwhile is left alone."""
    with transaction(engine, read_only=True) as conn:
        try:
            row = _live_row(conn, file_id)
        except NotFoundError:
            return "gone"          # removed since it was listed: nothing to scan
        cipher_for = _cipher_for(conn, keyring, row["client_id"])
        chunks = read_chunks(target, cipher_for, file_id, row["storage_key"], size=row["size_bytes"],
                             digest=row["sha256"], indexer=keyring.blind_indexer(conn))
    verdict = scanner.scan(chunks)
    keys: list[str] = []
    with transaction(engine) as conn:
        current = conn.execute(select(_files).where(_files.c.id == file_id, _files.c.deleted_at.is_(None),
                                                    _files.c.virus_scan_status == PENDING)).mappings().first()
        if current is None:
            return "gone"
        now = utcnow()
        values = {"virus_scan_status": verdict.status, "updated_at": now, "sync_version": next_change_version(conn)}
        if verdict.status == INFECTED:
            values["deleted_at"] = now
        values["data_checksum"] = row_checksum({**dict(current), **values})
        conn.execute(update(_files).where(_files.c.id == file_id).values(**values))
        if verdict.status == INFECTED:
            _malware_event(conn, principal, file_id, current["client_id"], verdict.signature, when="rescan")
            keys = object_keys(target, cipher_for, file_id, current["storage_key"])
        else:
            _audit(conn, principal, "UPDATE", file_id, {"client_id": str(current["client_id"]),
                                                        "virus_scan_status": verdict.status})
    delete_objects(target, keys)
    return verdict.status


def scan_counts(conn: Connection) -> dict[str, int]:
    """Live files by scan status, for health and compliance."""
    rows = conn.execute(select(_files.c.virus_scan_status, func.count()).where(_files.c.deleted_at.is_(None))
                        .group_by(_files.c.virus_scan_status)).all()
    counts = {PENDING: 0, CLEAN: 0}
    counts.update({status: n for status, n in rows})
    return counts


def scan_health(conn: Connection, settings: FilesSettings) -> dict:
    """Health's `files` block: live files pending a scan and infected, and whether
    scanning is on and clamd answers (None when it is off)."""
    counts = scan_counts(conn)
    return {"pending": counts.get(PENDING, 0), "clean": counts.get(CLEAN, 0),
            "infected": counts.get(INFECTED, 0), **scanner_state(settings)}
