"""Signing a document's exact bytes with the audit signing key, and checking them.

The key is the one that signs audit checkpoints and erasure certificates (Ed25519, its
seed wrapped by the KEK in `data_keys`, purpose AUDIT_SIGNING): an auditor checks a
signature with the public key alone. What is signed is a small statement (kind,
format, the SHA-256 of the document's content bytes, key id, time), so a signature
covers every byte of the content, whichever format carries it:

- json: `{"report": ..., "signature": ...}` written in one canonical layout; the digest
  is over the canonical JSON of `report`, and the file must be byte for byte the
  layout `serialize_json` writes (so even a changed space is found);
- md: the content, then one trailing line `<!-- strongroom-signature {...} -->`; the
  digest is over every byte before that line;
- pdf: a fixed-width placeholder in the document's Keywords metadata
  (`strongroom-signature:v1:` then filler) is replaced after rendering by the
  signature block; the digest is over the file with the placeholder filler in place,
  the same bytes before and after, as PDF signatures' byte ranges do.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, select

from strongroom.core.audit import canonical_json
from strongroom.core.db.models import DataKey, KeyPurpose, KeyState
from strongroom.core.db.types import utcnow

KIND = "strongroom-compliance-report"
VERSION = 1
PDF_MARK = b"strongroom-signature:v1:"
PDF_SLOT = 640                                  # base64url characters reserved after the mark
FILLER = b"~"
MD_OPEN, MD_CLOSE = b"\n<!-- strongroom-signature ", b" -->\n"
_keys = DataKey.__table__
_B64URL = re.compile(rb"^[A-Za-z0-9_-]+=*$")


class BadDocument(Exception):
    """The bytes are not a signed report of ours, or were changed (reason in args[0])."""


def pdf_placeholder() -> str:
    """The Keywords value a PDF is rendered with before it is signed."""
    return (PDF_MARK + FILLER * PDF_SLOT).decode()


def serialize_json(document: dict) -> bytes:
    """The one layout a signed JSON report is written in."""
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the signed statement -------------------------------------------------------------

def _signer(conn: Connection, keyring):
    private = keyring.signing_key(conn)
    key_id = conn.execute(select(_keys.c.id).where(_keys.c.purpose == KeyPurpose.AUDIT_SIGNING,
                                                   _keys.c.state == KeyState.ACTIVE)
                          .order_by(_keys.c.version.desc()).limit(1)).scalar_one()
    return private, str(key_id)


def _block(conn: Connection, keyring, fmt: str, content_sha256: str) -> dict:
    private, key_id = _signer(conn, keyring)
    statement = {"kind": KIND, "version": VERSION, "format": fmt, "sha256": content_sha256,
                 "key_id": key_id, "signed_at": utcnow().isoformat(), "algorithm": "Ed25519"}
    signature = private.sign(canonical_json(statement).encode())
    return {**statement, "public_key": base64.b64encode(private.public_key().public_bytes_raw()).decode(),
            "value": base64.b64encode(signature).decode()}


def _statement(block: dict) -> dict:
    return {k: v for k, v in block.items() if k not in ("public_key", "value")}


# --- per format -------------------------------------------------------------------------

def sign(conn: Connection, keyring, fmt: str, content: bytes | dict) -> bytes:
    """The signed document: `content` is the report dict for json, the rendered bytes
    for md, and for pdf the bytes rendered with `pdf_placeholder()` as Keywords."""
    if fmt == "json":
        block = _block(conn, keyring, fmt, _digest(canonical_json(content).encode()))
        return serialize_json({"report": content, "signature": block})
    if fmt == "md":
        block = _block(conn, keyring, fmt, _digest(content))
        return content + MD_OPEN + json.dumps(block, sort_keys=True).encode() + MD_CLOSE
    start = _pdf_slot(content)
    block = _block(conn, keyring, fmt, _digest(content))
    encoded = base64.urlsafe_b64encode(json.dumps(block, sort_keys=True).encode())
    if len(encoded) > PDF_SLOT:
        raise ValueError("signature block does not fit the PDF's placeholder")
    return content[:start] + encoded.ljust(PDF_SLOT, FILLER) + content[start + PDF_SLOT:]


def _pdf_slot(data: bytes) -> int:
    if data.count(PDF_MARK) != 1:
        raise BadDocument("the PDF holds no signature slot (or more than one)")
    start = data.index(PDF_MARK) + len(PDF_MARK)
    if len(data) < start + PDF_SLOT:
        raise BadDocument("the PDF's signature slot is cut short")
    return start


def block_span(data: bytes, fmt: str) -> range:
    """Where the signature block sits in a signed document (for tests and tools)."""
    if fmt == "pdf":
        start = _pdf_slot(data)
        return range(start, start + PDF_SLOT)
    if fmt == "md":
        return range(data.rindex(MD_OPEN), len(data))
    return range(data.rindex(b'"signature"'), len(data))


def detect(data: bytes) -> str:
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.lstrip().startswith(b"{"):
        return "json"
    if MD_OPEN in data:
        return "md"
    raise BadDocument("not a Strongroom compliance report (neither its PDF, Markdown nor JSON form)")


def open_document(data: bytes) -> tuple[str, dict, str]:
    """(format, signature block, the SHA-256 of the content as it is now). BadDocument
    if the bytes are not laid out as a signed report; never says what they hold."""
    fmt = detect(data)
    if fmt == "json":
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            raise BadDocument("not a Strongroom compliance report (not valid JSON)") from None
        if not isinstance(document, dict) or set(document) != {"report", "signature"} \
                or not isinstance(document["signature"], dict):
            raise BadDocument("not a Strongroom compliance report (no report and signature)")
        if serialize_json(document) != data:
            raise BadDocument("the file is not byte for byte as it was signed (changed after signing)")
        return fmt, document["signature"], _digest(canonical_json(document["report"]).encode())
    if fmt == "md":
        at = data.rindex(MD_OPEN)
        if not data.endswith(MD_CLOSE):
            raise BadDocument("the Markdown report's signature line is not its last line (changed after signing)")
        raw = data[at + len(MD_OPEN):-len(MD_CLOSE)]
        block = _json_block(raw)
        if json.dumps(block, sort_keys=True).encode() != raw:
            raise BadDocument("the signature line was changed after signing")
        return fmt, block, _digest(data[:at])
    start = _pdf_slot(data)
    slot = data[start:start + PDF_SLOT]
    encoded = slot.rstrip(FILLER)
    if not _B64URL.match(encoded) or FILLER in encoded:
        raise BadDocument("the PDF's signature slot is damaged (changed after signing)")
    try:
        raw = base64.urlsafe_b64decode(encoded)
    except ValueError:
        raise BadDocument("the PDF's signature slot is damaged (changed after signing)") from None
    block = _json_block(raw)
    if base64.urlsafe_b64encode(json.dumps(block, sort_keys=True).encode()) != encoded:
        raise BadDocument("the PDF's signature slot is damaged (changed after signing)")
    unsigned = data[:start] + FILLER * PDF_SLOT + data[start + PDF_SLOT:]
    return fmt, block, _digest(unsigned)


def _json_block(raw: bytes) -> dict:
    try:
        block = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise BadDocument("the signature block is not readable (changed after signing)") from None
    if not isinstance(block, dict):
        raise BadDocument("the signature block is not readable (changed after signing)")
    return block


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None = None
    format: str | None = None
    key_id: str | None = None
    signed_at: str | None = None
    sha256: str | None = None


def check(data: bytes, *, conn: Connection | None = None, public_key: bytes | None = None) -> Verdict:
    """Verify `data`: its layout, the content digest, and the Ed25519 signature under
    `public_key` if given, else under the key the database (`conn`) holds for the
    signature's key id. The public key printed in the file is only compared, never
    trusted: anyone can sign with a key of their own."""
    try:
        fmt, block, actual = open_document(data)
    except BadDocument as exc:
        return Verdict(False, str(exc))
    statement = _statement(block)
    if statement.get("kind") != KIND or statement.get("format") != fmt or statement.get("algorithm") != "Ed25519":
        return Verdict(False, "not a Strongroom compliance report signature", fmt)
    try:
        key_id = str(uuid.UUID(str(statement.get("key_id"))))
        value = base64.b64decode(str(block.get("value")), validate=True)
        if base64.b64encode(value).decode() != block.get("value"):   # base64 has spare bits: one spelling only
            raise ValueError("value")
    except ValueError:
        return Verdict(False, "the signature block is malformed", fmt)
    if public_key is None:
        if conn is None:
            return Verdict(False, "no key to check against (give the database or the public key)", fmt)
        public_key = conn.execute(select(_keys.c.public_key).where(
            _keys.c.id == uuid.UUID(key_id), _keys.c.purpose == KeyPurpose.AUDIT_SIGNING)).scalar()
        if public_key is None:
            return Verdict(False, "signed by a key this database does not know", fmt, key_id)
    if base64.b64encode(bytes(public_key)).decode() != block.get("public_key"):
        return Verdict(False, "signed by another key than the audit signing key", fmt, key_id)
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public_key)).verify(value, canonical_json(statement).encode())
    except (InvalidSignature, ValueError):
        return Verdict(False, "the signature does not verify (report altered or forged)", fmt, key_id)
    if statement.get("sha256") != actual:
        return Verdict(False, "the content does not match its signed digest (report altered after signing)",
                       fmt, key_id)
    return Verdict(True, None, fmt, key_id, statement.get("signed_at"), actual)
