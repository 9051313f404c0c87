"""Unfinished export files, written as ciphertext under a key that lives only in memory,
where the filesystem cannot keep them unnamed (core.export.archive writes them as
unnamed files where it can: once, with nothing to copy at the end).

An export of the `full` masking profile writes thousands of clear SSNs. Written straight
to disk, a crash (kill -9, power loss) mid-export left them readable in the temporary
directory until someone noticed. So while an export runs, each data file is a spool:
AES-256-GCM segments under a random key held by this process alone and never written
anywhere. A crash loses the key with the process, and what is left on disk is
unreadable; the daemon removes it at its next start all the same (core.jobs.export).
Only when every row is written does `unspool` turn each spool into its plaintext file,
a sequential decrypt-and-copy at disk speed, after which the directory is moved into
place: the window in which a crash can leave clear PHI on disk shrinks from the whole
export (reading, decrypting and masking every row) to that last copy, and the daemon's
start-up reconciliation removes even that.

Segment layout: 4-byte big-endian ciphertext length, then AES-GCM(ciphertext + tag).
The nonce is the segment's index; the associated data is the index and a final flag,
so a segment cannot be moved, dropped or the file cut short without failing to open.
One key per file, so no (key, nonce) pair is ever used twice.
"""
from __future__ import annotations

import io
import struct
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom.core.errors import IntegrityError

SEGMENT = 1 << 16     # 64 KiB: memory per open file stays small; 20 bytes of overhead each
SUFFIX = ".spool"
_LENGTH = struct.Struct(">I")


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def _aad(index: int, final: bool) -> bytes:
    return index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


class SpoolWriter(io.RawIOBase):
    """A write-only stream that seals every SEGMENT bytes into `target`; `key` opens it.
    Memory: under a segment of plaintext and one of ciphertext, whatever the file's size."""

    def __init__(self, target: BinaryIO) -> None:
        super().__init__()
        self.key = AESGCM.generate_key(bit_length=256)
        self._aead = AESGCM(self.key)
        self._target = target
        self._buffer = bytearray()
        self._index = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        """Seal whole segments straight from `data`; keep only the tail (less than a
        segment), since the last segment is sealed as final and is known only at the end."""
        with memoryview(data) as raw, raw.cast("B") as view:
            size, pos = len(view), 0
            if self._buffer:
                pos = min(SEGMENT - len(self._buffer), size)
                self._buffer += view[:pos]
                if len(self._buffer) < SEGMENT:
                    return size
                self._seal(self._buffer, final=False)
                self._buffer.clear()
            while size - pos >= SEGMENT:
                self._seal(view[pos:pos + SEGMENT], final=False)
                pos += SEGMENT
            self._buffer += view[pos:]
        return size

    def _seal(self, plain, *, final: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._index), plain, _aad(self._index, final))
        self._target.write(_LENGTH.pack(len(sealed)) + sealed)
        self._index += 1

    def finish(self) -> None:
        """Seal what is buffered as the final segment (an empty file has one, empty)."""
        self._seal(self._buffer, final=True)
        self._buffer.clear()


def unspool(source: BinaryIO, key: bytes, target: BinaryIO, *, name: str) -> int:
    """Decrypt a finished spool into `target`, a segment at a time; returns the bytes
    written. A spool that was altered, reordered or cut short is an IntegrityError."""
    aead, index, written = AESGCM(key), 0, 0
    while True:
        header = source.read(_LENGTH.size)
        if len(header) != _LENGTH.size:
            raise IntegrityError(f"export file {name}: its spool ends before its final segment")
        sealed = source.read(_LENGTH.unpack(header)[0])
        for final in (False, True):
            try:
                plain = aead.decrypt(_nonce(index), sealed, _aad(index, final))
                break
            except InvalidTag:
                continue
        else:
            raise IntegrityError(f"export file {name}: spool segment {index} does not open")
        target.write(plain)
        written += len(plain)
        index += 1
        if final:
            if source.read(1):
                raise IntegrityError(f"export file {name}: bytes after the spool's final segment")
            return written

