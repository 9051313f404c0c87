"""The key recovery kit: the KEK on paper, sealed with a passphrase.

Losing the key file must never be how a practice loses its records. The kit is a
printable page holding the KEK encrypted under a key derived from a passphrase, so the
page alone (stolen from a filing cabinet) and the passphrase alone are both useless.

Threats and trade-offs:
- Offline guessing of the passphrase from a stolen page: scrypt with N=2^17, r=8, p=1
  (128 MiB, about half a second per guess) and a policy of at least 12 characters.
- A person typing the page back: the sealed blob is shown in base32 (no 0/1/8/9 to
  confuse with O/I/B; those are accepted and mapped anyway), in groups of four, with a
  checksum per line that also covers the line number, so a typo or a swapped line is
  reported by line instead of as "wrong passphrase". A QR code carries the same text.
- Tampering or a kit for another KEK: AES-256-GCM with the header (format version,
  scrypt parameters, KEK id, salt) as associated data; the recovered key must also hash
  to the recorded KEK id.

A KEK held in AWS KMS (core.crypto.kms) cannot go on paper: the KMS key never leaves
KMS, and sealing the in-memory wrapping key here would be a copy that bypasses KMS (and
its access policy and audit trail). Its kit (`export_kms_kit`) says so plainly and
carries what can help: the KMS key's ARN and the envelope (the KMS-encrypted wrapping
key, which is the key file's whole content and useless without KMS), so a lost data
directory or key file can be restored while the KMS key and access to it survive. If
the KMS key is deleted or access to it is lost for good, the records are lost, unless a
plain file KEK was kept as an escrow (`strongroom keys rotate-kek --to file` before,
and a kit of that).
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import struct
import unicodedata
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlalchemy import Connection, Engine, func, select

from strongroom.core import audit
from strongroom.core.crypto.kek import Kek, kek_id_of, write_kek_file
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import DataKey, KeyState
from strongroom.core.db.types import utcnow
from strongroom.core.errors import CryptoError, KeyUnavailableError, ValidationError

FORMAT_VERSION = 1
MIN_PASSPHRASE = 12
DEFAULT_WORK = 17          # scrypt N = 2**17
_WORK_RANGE = range(14, 21)  # what a kit may ask for: not weaker, not a memory bomb
_MAGIC = b"SRK"
# magic | version | log2 N | r | p | kek id (8) | salt (16) | nonce (12) | sealed key (48) | crc32
_HEADER = struct.Struct(">3sBBBB8s16s12s")
_SEALED = 32 + 16
BLOB_LEN = _HEADER.size + _SEALED + 4   # 95 bytes = 152 base32 characters, no padding
QR_PREFIX = "SRKIT:"
BEGIN = "-----BEGIN STRONGROOM RECOVERY KIT-----"
END = "-----END STRONGROOM RECOVERY KIT-----"
GROUP = 4
GROUPS_PER_LINE = 6
_CONFUSABLE = str.maketrans({"0": "O", "1": "I", "8": "B"})
_LINE = re.compile(r"^\s*(\d{1,2})\s*[:.)]?\s*(.*)$")
_keys = DataKey.__table__


@dataclass(frozen=True)
class KitBlob:
    """The parsed kit: everything needed to try a passphrase."""

    version: int
    work: int
    r: int
    p: int
    kek_id: str
    salt: bytes
    nonce: bytes
    sealed: bytes

    def header(self) -> bytes:
        return _HEADER.pack(_MAGIC, self.version, self.work, self.r, self.p,
                            bytes.fromhex(self.kek_id), self.salt, self.nonce)

    def to_bytes(self) -> bytes:
        body = self.header() + self.sealed
        return body + struct.pack(">I", zlib.crc32(body))


# -- passphrase and key derivation ------------------------------------------------------

def check_passphrase(passphrase: str) -> str:
    """Apply the policy; returns the NFC-normalised passphrase (same bytes on every OS)."""
    normal = unicodedata.normalize("NFC", passphrase)
    if len(normal) < MIN_PASSPHRASE:
        raise ValidationError(
            f"the kit passphrase must be at least {MIN_PASSPHRASE} characters "
            f"(got {len(normal)}); a few unrelated words make a good one"
        )
    return normal


def _derive(passphrase: str, salt: bytes, work: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=2 ** work, r=r, p=p).derive(passphrase.encode())


# -- export ------------------------------------------------------------------------------

def seal_kek(kek: Kek, passphrase: str, *, work: int = DEFAULT_WORK) -> KitBlob:
    """Encrypt the KEK under the passphrase; `work` is log2 of scrypt's N (tests lower it)."""
    passphrase = check_passphrase(passphrase)
    if work not in _WORK_RANGE:
        raise ValidationError(f"scrypt work factor must be in {_WORK_RANGE.start}..{_WORK_RANGE.stop - 1}")
    salt, nonce = os.urandom(16), os.urandom(12)
    draft = KitBlob(FORMAT_VERSION, work, 8, 1, kek.kek_id, salt, nonce, b"")
    sealed = AESGCM(_derive(passphrase, salt, work, 8, 1)).encrypt(nonce, kek.key, draft.header())
    return KitBlob(FORMAT_VERSION, work, 8, 1, kek.kek_id, salt, nonce, sealed)


def _checksum(number: int, chars: str) -> str:
    digest = hashlib.sha256(f"strongroom-kit-line\0{number}\0{chars}".encode()).digest()
    return base64.b32encode(digest[:5]).decode()[:GROUP]


def kit_lines(blob: KitBlob) -> list[str]:
    """The typed-back block: `NN  ABCD EFGH ...  CHKS`, one checksum per line."""
    chars = base64.b32encode(blob.to_bytes()).decode()
    width = GROUP * GROUPS_PER_LINE
    lines = []
    for number, start in enumerate(range(0, len(chars), width), start=1):
        part = chars[start:start + width]
        groups = " ".join(part[i:i + GROUP] for i in range(0, len(part), GROUP))
        lines.append(f"{number:02d}  {groups:<{width + GROUPS_PER_LINE - 1}}  {_checksum(number, part)}")
    return lines


def qr_payload(blob: KitBlob) -> str:
    """What the QR code holds: upper-case base32 only, so QR's compact alphanumeric mode fits it."""
    return QR_PREFIX + base64.b32encode(blob.to_bytes()).decode()


def render_qr(payload: str) -> list[str]:
    """The QR code as text, two module rows per line with half-block characters.

    Ink is a dark module, as a scanner expects from a printed page; a quiet zone of four
    modules surrounds it.
    """
    matrix = [list(row) for row in segno.make(payload, error="m", micro=False).matrix]
    border = 4
    size = len(matrix) + 2 * border
    dark = [[False] * size for _ in range(size)]
    for y, row in enumerate(matrix):
        for x, module in enumerate(row):
            dark[y + border][x + border] = bool(module)
    if size % 2:
        dark.append([False] * size)
    glyph = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}
    return ["".join(glyph[(dark[y][x], dark[y + 1][x])] for x in range(size)).rstrip()
            for y in range(0, len(dark), 2)]


def export_kit(kek: Kek, passphrase: str, *, practice_name: str,
               work: int = DEFAULT_WORK, now: datetime | None = None) -> str:
    """The printable recovery page for `kek`, sealed with `passphrase`.

    Holds no secret in clear: the KEK id is a fingerprint, not the key.
    """
    blob = seal_kek(kek, passphrase, work=work)
    name = " ".join(practice_name.split())[:60] or "(unnamed practice)"
    when = (now or utcnow()).strftime("%Y-%m-%d %H:%M UTC")
    page = [
        "STRONGROOM KEY RECOVERY KIT",
        "===========================",
        "",
        f"Practice:  {name}",
        f"Created:   {when}",
        f"Key id:    {kek.kek_id}  (a fingerprint of the key, not the key)",
        f"Format:    kit v{FORMAT_VERSION}; scrypt N=2^{work} r=8 p=1; AES-256-GCM",
        "",
        "KEEP THIS PAGE SAFE, AND THE PASSPHRASE SOMEWHERE ELSE. Together they unlock",
        "every record this practice keeps in Strongroom. Without both, a lost key file",
        "means lost records: nobody, not even Strongroom's developers, can recover them.",
        "",
        "TO RECOVER THE KEY",
        "  - Type the numbered lines between the markers into a text file. Case and",
        "    spacing do not matter; the last group of each line is a checksum, so a",
        "    typing error is reported with its line number. Or scan the QR code into",
        "    a text file instead.",
        "  - Run:   strongroom keys recover --kit FILE --out /path/to/kek.key",
        "  - Set keys.kek_file in strongroom.toml to that file, then check with",
        "           strongroom keys test-kit --kit FILE",
        f"  - This kit opens key id {kek.kek_id} only. After every key rotation",
        "    (strongroom keys rotate-kek) print a new kit, test it, then destroy",
        "    this one.",
        "",
        BEGIN,
        *kit_lines(blob),
        END,
        "",
        "QR code of the same data:",
        "",
        *render_qr(qr_payload(blob)),
        "",
    ]
    return "\n".join(page)


def export_kms_kit(kek: Kek, *, practice_name: str, now: datetime | None = None) -> str:
    """The recovery page for a KEK held in AWS KMS: what it can and cannot recover, and
    the envelope (the key file's content; only the KMS key opens it). No passphrase: the
    envelope is already sealed by KMS, and nothing on this page opens it without KMS."""
    if kek.envelope is None:
        raise ValidationError("kek: not a KMS-held KEK (use export_kit)")
    envelope = kek.envelope.to_text().strip()
    name = " ".join(practice_name.split())[:60] or "(unnamed practice)"
    when = (now or utcnow()).strftime("%Y-%m-%d %H:%M UTC")
    page = [
        "STRONGROOM KEY RECOVERY KIT (KEK HELD IN AWS KMS)",
        "=================================================",
        "",
        f"Practice:  {name}",
        f"Created:   {when}",
        f"Key id:    {kek.kek_id}  (a fingerprint of the key, not the key)",
        f"KMS key:   {kek.envelope.kms_key_arn}",
        "",
        "WHAT THIS PAGE CANNOT DO. The key-encryption key lives in AWS KMS and never",
        "leaves it, so it cannot be printed here. If the KMS key is deleted, or access",
        "to it is lost for good (account closed, key policy broken, region gone), every",
        "record this practice keeps in Strongroom is lost, and so are the backups: nobody,",
        "not even Strongroom's developers or AWS support, can recover them. The only",
        "protection against that is an escrow kept outside KMS: move the KEK to a file",
        "(strongroom keys rotate-kek --to file), print a passphrase kit of it",
        "(strongroom keys export-kit), and only then move it back into KMS if you wish.",
        "Protect the KMS key: deny kms:ScheduleKeyDeletion and kms:DisableKey to day-to-day",
        "roles, and keep a second administrator able to restore the key policy.",
        "",
        "WHAT THIS PAGE CAN DO. It holds the envelope: the KEK's wrapping key encrypted by",
        "the KMS key. That is the whole content of the key file (keys.kek_file), and it is",
        "useless without the KMS key. If the key file or the data directory is lost while",
        "the KMS key and your access to it survive:",
        "  - Scan the QR code (or type the envelope line) into a text file, chmod 600 it.",
        "  - Set keys.kek_file to that file and keys.kms_key_id to the KMS key above,",
        "    with keys.kms_region (and keys.kms_endpoint_url if you use one).",
        "  - Start strongroomd: it asks KMS to open the envelope once; a typing error",
        "    is reported as an envelope KMS cannot decrypt.",
        f"  - This page opens key id {kek.kek_id} only. After every key rotation",
        "    (strongroom keys rotate-kek) print a new one and destroy this one.",
        "",
        "-----BEGIN STRONGROOM KMS ENVELOPE-----",
        envelope,
        "-----END STRONGROOM KMS ENVELOPE-----",
        "",
        "QR code of the envelope:",
        "",
        *render_qr(envelope),
        "",
    ]
    return "\n".join(page)


# -- reading back ------------------------------------------------------------------------

def _kit_block(text: str) -> list[tuple[int, str]]:
    """(line number in the file, text) of the data lines; between the markers when present."""
    lines = text.splitlines()
    upper = [line.strip().upper() for line in lines]
    if BEGIN in upper:
        start = upper.index(BEGIN) + 1
        if END not in upper[start:]:
            raise ValidationError("recovery kit: the END marker line is missing")
        stop = upper.index(END, start)
    else:
        start, stop = 0, len(lines)
    return [(i + 1, lines[i]) for i in range(start, stop) if lines[i].strip()]


def _parse_block(text: str) -> bytes:
    chars: list[str] = []
    expected = 1
    for file_line, line in _kit_block(text):
        match = _LINE.match(line)
        if not match:
            raise ValidationError(
                f"recovery kit line {expected:02d} (text line {file_line}): does not start "
                "with its two-digit line number")
        number = int(match.group(1))
        body = "".join(match.group(2).split()).upper().translate(_CONFUSABLE)
        if number != expected:
            what = "is missing" if number > expected else "appears twice or out of order"
            raise ValidationError(f"recovery kit line {expected:02d} {what} (found line {number:02d})")
        data, check = body[:-GROUP], body[-GROUP:]
        if len(body) <= GROUP or not re.fullmatch(r"[A-Z2-7]+", body):
            raise ValidationError(f"recovery kit line {number:02d}: not kit characters (A-Z, 2-7)")
        if _checksum(number, data) != check:
            raise ValidationError(
                f"recovery kit line {number:02d}: checksum does not match; "
                "check this line for a typing error")
        chars.append(data)
        expected += 1
    if not chars:
        raise ValidationError("recovery kit: no kit lines found")
    return _b32(''.join(chars), "recovery kit")


def _b32(chars: str, where: str) -> bytes:
    try:
        return base64.b32decode(chars + "=" * (-len(chars) % 8))
    except ValueError:
        raise ValidationError(f"{where}: not valid base32 data") from None


def _unpack(raw: bytes) -> KitBlob:
    if len(raw) != BLOB_LEN:
        raise ValidationError(
            f"recovery kit: {len(raw)} bytes of data, expected {BLOB_LEN} (a line missing at the end?)")
    if struct.unpack(">I", raw[-4:])[0] != zlib.crc32(raw[:-4]):
        raise ValidationError("recovery kit: whole-kit checksum does not match (damaged kit)")
    magic, version, work, r, p, kek_id, salt, nonce = _HEADER.unpack(raw[:_HEADER.size])
    if magic != _MAGIC:
        raise ValidationError("recovery kit: not a Strongroom recovery kit")
    if version != FORMAT_VERSION:
        raise ValidationError(f"recovery kit: format version {version} is not supported "
                              f"(this Strongroom reads version {FORMAT_VERSION})")
    if work not in _WORK_RANGE or r != 8 or p != 1:
        raise ValidationError("recovery kit: unsupported key-derivation parameters")
    return KitBlob(version, work, r, p, kek_id.hex(), salt, nonce, raw[_HEADER.size:-4])


def read_kit(text: str) -> KitBlob:
    """Parse a kit page, a typed-back copy of its block, or a scanned QR payload.

    Tolerates case, spacing, blank lines and the look-alikes 0/1/8; errors name the kit
    line whose checksum fails, or the line that is missing.
    """
    for line in text.splitlines():
        compact = "".join(line.split()).upper()
        if compact.startswith(QR_PREFIX):
            chars = compact[len(QR_PREFIX):].translate(_CONFUSABLE)
            return _unpack(_b32(chars, "recovery kit QR data"))
    return _unpack(_parse_block(text))


def open_kit(text: str, passphrase: str) -> Kek:
    """The KEK in a kit. A wrong passphrase raises CryptoError, never a traceback."""
    blob = read_kit(text)
    key = _derive(unicodedata.normalize("NFC", passphrase), blob.salt, blob.work, blob.r, blob.p)
    try:
        kek = AESGCM(key).decrypt(blob.nonce, blob.sealed, blob.header())
    except InvalidTag:
        raise CryptoError("wrong passphrase or damaged kit") from None
    if kek_id_of(kek) != blob.kek_id:
        raise CryptoError("wrong passphrase or damaged kit (key does not match its id)")
    return Kek(kek, f"recovery kit for KEK {blob.kek_id}")


# -- proving and using a kit -------------------------------------------------------------

@dataclass(frozen=True)
class KitCheck:
    ok: bool
    kit_kek_id: str
    database_kek_ids: dict[str, int]
    keys_covered: int
    keys_total: int
    unwrapped: dict[str, str]   # purpose -> key id proven to unwrap
    message: str


def check_kek(conn: Connection, kek: Kek) -> KitCheck:
    """Does `kek` open this database's keys? Proven by unwrapping one data key per purpose.

    Needs no other key: this runs when the live key file is gone.
    """
    in_use = dict(conn.execute(
        select(_keys.c.kek_id, func.count())
        .where(_keys.c.state != KeyState.DESTROYED, _keys.c.wrapped_key.is_not(None))
        .group_by(_keys.c.kek_id)).all())
    total = sum(in_use.values())
    covered = in_use.get(kek.kek_id, 0)
    keyring = Keyring([kek])
    unwrapped: dict[str, str] = {}
    live = (_keys.c.kek_id == kek.kek_id, _keys.c.state != KeyState.DESTROYED,
            _keys.c.wrapped_key.is_not(None))
    purposes = conn.execute(select(_keys.c.purpose).where(*live).distinct()).scalars().all()
    for purpose in sorted(purposes, key=lambda p: p.value):
        row = conn.execute(select(_keys.c.id, _keys.c.purpose, _keys.c.wrapped_key)
                           .where(*live, _keys.c.purpose == purpose).limit(1)).one()
        keyring.unwrap(row.id, row.purpose, row.wrapped_key, kek.kek_id)
        unwrapped[row.purpose.value] = str(row.id)
    if total == 0:
        message = "the database holds no data keys yet; nothing to prove against"
        ok = True
    elif covered == total:
        ok = True
        message = f"the kit's KEK {kek.kek_id} unwraps this database's data keys"
    elif covered:
        ok = False
        message = (f"the kit's KEK {kek.kek_id} covers {covered} of {total} data keys; the rest "
                   f"are wrapped by {', '.join(sorted(set(in_use) - {kek.kek_id}))}")
    else:
        ok = False
        message = (f"the kit holds KEK {kek.kek_id}, but this database's data keys are wrapped "
                   f"by {', '.join(sorted(in_use))}: an old kit, or another practice's")
    return KitCheck(ok, kek.kek_id, in_use, covered, total, unwrapped, message)


def test_kit(engine: Engine, kit_text: str, passphrase: str, *,
             actor: str | None = None) -> KitCheck:
    """Prove a kit opens this database: the KEK id matches and real data keys unwrap.

    Uses only the kit and the database, never the live key file, because the disaster it
    rehearses is that file being gone. With `actor`, the result is audited (VERIFY) as
    evidence that the recovery path was tested.
    """
    kek = open_kit(kit_text, passphrase)
    with transaction(engine) as conn:
        result = check_kek(conn, kek)
    if result.ok:   # the kit's KEK is this database's: it seals the evidence like the key file would
        from strongroom.core.crypto.keyring import Keyring
        audit.seal_with(engine, Keyring([kek]))
    if actor is None:
        return result
    try:
        with transaction(engine) as conn:
            audit.append(conn, actor=actor, action="VERIFY", table_name="data_keys",
                         outcome="success" if result.ok else "failure",
                         details={"what": "recovery_kit", "kek_id": kek.kek_id,
                                  "keys_covered": result.keys_covered,
                                  "keys_total": result.keys_total,
                                  "purposes_unwrapped": sorted(result.unwrapped)})
    except audit.UnsealableEntry:
        pass   # a kit that opens nothing holds no key to seal its own failure with; it is reported
    return result


test_kit.__test__ = False  # a domain verb, not a pytest test


def recover(kit_text: str, passphrase: str, out_path: Path) -> Kek:
    """Write the kit's KEK to a new key file (0600); refuses to overwrite any file."""
    out_path = Path(out_path)
    if out_path.exists():
        raise KeyUnavailableError(f"{out_path}: refusing to overwrite an existing file")
    kek = open_kit(kit_text, passphrase)
    write_kek_file(out_path, kek.key)
    return Kek(kek.key, str(out_path))
