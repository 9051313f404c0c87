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
"""
from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from sqlalchemy import Connection, insert, select, update

from strongroom.core import audit
from strongroom.core.config import FilesSettings
from strongroom.core.crypto.fields import FieldCipher, associated_data
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.models import Client, ClientFile, DataKey, KeyState
from strongroom.core.db.types import utcnow
from strongroom.core.errors import CryptoError, IntegrityError, NotFoundError, PermissionDenied, ValidationError
from strongroom.core.files.content import ContentWriter, StoredContent, object_keys, read_chunks, read_manifest
from strongroom.core.ids import new_id
from strongroom.core.masking import REDACTED
from strongroom.core.principal import Principal
from strongroom.core.repository.changes import next_change_version, row_checksum
from strongroom.core.storage.base import Target

TABLE = "client_files"
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

    @property
    def received(self) -> int:
        return self.writer.size

    def write(self, data: bytes) -> None:
        """More content; refused (and everything stored so far deleted) past the declared size."""
        if self.writer.size + len(data) > self.declared_size:
            self.abort()
            raise ValidationError(f"more content than the declared {self.declared_size} bytes: upload abandoned")
        self.writer.write(data)

    def abort(self) -> None:
        self.writer.abort()


def begin_add(conn: Connection, keyring: Keyring, principal: Principal, target: Target,
              settings: FilesSettings, client_id: uuid.UUID, *, name: str, content_type: str,
              size: int, description: str | None = None) -> Upload:
    """Check everything an add needs before any byte is stored; returns the Upload."""
    _require(principal, f"table:{TABLE}:write")
    name = validate_name(name)
    content_type = validate_type(settings, content_type)
    size = validate_size(settings, size)
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
    return Upload(file_id, client_id, practice_id, cipher, name, content_type, size, writer)


def commit_add(conn: Connection, principal: Principal, upload: Upload) -> dict:
    """Finish storing the content, then insert the row and its CREATE entry. If the
    row cannot be written the stored objects are deleted again."""
    if upload.received != upload.declared_size:
        upload.abort()
        raise ValidationError(f"received {upload.received} of the declared {upload.declared_size} bytes: "
                              "upload abandoned")
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
            "sha256": stored.digest, "uploaded_by": principal.user_id, "virus_scan_status": "pending",
            "created_at": now, "updated_at": now, "sync_version": next_change_version(conn), "deleted_at": None,
        }
        row["data_checksum"] = row_checksum(row)
        conn.execute(insert(_files), [row])
        _audit(conn, principal, "CREATE", upload.file_id, {"client_id": str(upload.client_id),
                                                           "size_bytes": stored.size,
                                                           "content_type": upload.content_type,
                                                           "chunks": stored.chunks})
    except BaseException:
        upload.abort()
        raise
    return {"id": upload.file_id, "client_id": upload.client_id, "size_bytes": stored.size,
            "content_type": upload.content_type, "virus_scan_status": "pending"}


def add_file(conn: Connection, keyring: Keyring, principal: Principal, target: Target,
             settings: FilesSettings, client_id: uuid.UUID, *, name: str, content_type: str,
             size: int, content: Iterable[bytes], description: str | None = None) -> dict:
    """`begin_add`, the content in pieces, `commit_add`: one call for in-process callers."""
    upload = begin_add(conn, keyring, principal, target, settings, client_id, name=name,
                       content_type=content_type, size=size, description=description)
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
    unwrapped now, so a stream of chunks needs no database connection once opened."""
    ids = conn.execute(select(_keys.c.id).where(_keys.c.client_id == client_id,
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


def open_file(conn: Connection, keyring: Keyring, principal: Principal, target: Target,
              file_id: uuid.UUID) -> Download:
    """Open a file for reading (needs read and `phi:read`: the content is PHI), audited
    as a READ. The manifest is checked here, so a missing or tampered one is refused
    before anything is handed out; each chunk is authenticated as it is read, and the
    whole checked against the row after the last (see content.read_chunks). The stream
    needs no database connection: it may be read after the transaction has ended."""
    _require(principal, f"table:{TABLE}:read", "phi:read")
    row = _live_row(conn, file_id)
    cipher_for = _cipher_for(conn, keyring, row["client_id"])
    read_manifest(target, cipher_for, file_id, row["storage_key"])
    name = keyring.cipher(conn, row["key_id"]).decrypt_text(row["file_name_enc"], TABLE, "file_name", file_id)
    _audit(conn, principal, "READ", file_id, {"client_id": str(row["client_id"]), "phi": True, "content": True,
                                              "size_bytes": row["size_bytes"]})
    chunks = read_chunks(target, cipher_for, file_id, row["storage_key"], size=row["size_bytes"],
                         digest=row["sha256"], indexer=keyring.blind_indexer(conn))
    return Download(file_id, row["client_id"], name, row["content_type"], row["size_bytes"], chunks)


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
