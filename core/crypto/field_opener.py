"""Opening a batch's PHI columns on a second core: a helper process for bulk reads.

A bulk read (an export, `clients list --all --reveal`) spends most of its time in one
AES-GCM open per field, a C call made while holding the GIL, so threads cannot share it
(measured at 100k clients: a million opens, about 1.2 s of a 2.6 s export). A helper
process can: `FieldOpener` starts one (`python -m strongroom.core.crypto.field_opener`,
which imports this module and `cryptography` alone, about 60 ms), and a walk hands it
every other batch while it opens the next one itself (core.repository.records).

What travels, and for how long: per batch, over the helper's stdin pipe, the data keys
of that batch's rows (unwrapped by the parent: the KEK never leaves it), the rows' ids
and the ciphertexts; back over its stdout, the plaintexts. Nothing is written anywhere.
The helper drops a batch's keys as soon as it has answered it, and lives only as long as
the walk: `close` ends it, and a parent that dies closes its pipes, which ends it too.

The helper takes only the usual case: every field well formed and sealed with its row's
key (`open_column`). Any column that is not, it answers None for, and the parent opens
that column the careful way, with the checks and errors it has always had.
"""
from __future__ import annotations

import logging
import operator
import pickle
import struct
import subprocess
import sys
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom.core.crypto.fields import FORMAT_VERSION, MIN_CIPHERTEXT

log = logging.getLogger(__name__)
_VERSION_BYTE = bytes([FORMAT_VERSION])
_LENGTH = struct.Struct(">Q")


def open_column(prefix: bytes, blobs: Sequence, rids: Sequence[bytes], heads: Sequence,
                openers: Sequence) -> list[str] | None:
    """The texts of `blobs` (none None), each opened with the opener of its row, under the
    associated data `prefix + rid`; None if any is too short or does not start with its
    row's header (version byte and the row's key id). Raises InvalidTag as AES-GCM does."""
    if not blobs:
        return []
    if min(map(len, blobs)) < MIN_CIPHERTEXT or [blob[:17] for blob in blobs] != heads:
        return None
    plain = map(operator.call, openers, [blob[17:29] for blob in blobs], [blob[29:] for blob in blobs],
                [prefix + rid for rid in rids])
    return [value.decode() for value in plain]


def open_column_with_gaps(prefix: bytes, blobs: Sequence, rids: Sequence[bytes], heads: Sequence,
                          openers: Sequence) -> list[str | None] | None:
    """`open_column` for a column that may hold None (a field not filled in): None stays
    None in its place."""
    if None not in blobs:
        return open_column(prefix, blobs, rids, heads, openers)
    keep = [n for n, blob in enumerate(blobs) if blob is not None]
    opened = open_column(prefix, [blobs[n] for n in keep], [rids[n] for n in keep],
                         [heads[n] for n in keep], [openers[n] for n in keep])
    if opened is None:
        return None
    out: list[str | None] = [None] * len(blobs)
    for n, value in zip(keep, opened):
        out[n] = value
    return out


def open_batch(keys: dict[bytes, bytes], row_keys: Sequence[bytes], rids: Sequence[bytes],
               columns: Sequence[tuple[bytes, Sequence]]) -> list[list | None]:
    """Every column of `columns` ((associated-data prefix, ciphertexts) pairs) opened with
    its rows' keys (`keys`: 16-byte key id -> 256-bit key; `row_keys`: each row's key id),
    or None for a column that is not the usual case (malformed, sealed with another key,
    failing authentication): the caller opens that one field by field."""
    aeads = {raw: AESGCM(key).decrypt for raw, key in keys.items()}
    openers = [aeads[raw] for raw in row_keys]
    heads = [_VERSION_BYTE + raw for raw in row_keys]
    out: list[list | None] = []
    for prefix, blobs in columns:
        try:
            out.append(open_column_with_gaps(prefix, blobs, rids, heads, openers))
        except InvalidTag:
            out.append(None)
    return out


# --- the helper process and its parent's handle ----------------------------------------

def _send(stream, payload: object) -> None:
    body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(body)))
    stream.write(body)
    stream.flush()


def _receive(stream) -> object:
    header = stream.read(_LENGTH.size)
    if len(header) != _LENGTH.size:
        raise EOFError("field opener: the pipe closed")
    size = _LENGTH.unpack(header)[0]
    body = stream.read(size)
    if len(body) != size:
        raise EOFError("field opener: the pipe closed mid-message")
    return pickle.loads(body)


def serve(source, sink) -> None:
    """The helper's loop: a batch in, its columns out, until the parent sends None or
    closes the pipe. A batch's keys are dropped before the next one is read."""
    while True:
        try:
            batch = _receive(source)
        except EOFError:
            return
        if batch is None:
            return
        result = open_batch(*batch)
        del batch
        _send(sink, result)
        del result


class FieldOpener:
    """One helper process opening batches for one walk (see the module docstring). Use
    `submit` then `result` for one batch at a time, and `close` when the walk ends
    (also on error: it kills a helper that is still busy)."""

    def __init__(self) -> None:
        self._process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, close_fds=True)
        self._busy = False
        self._gone = False
        self._columns = 0

    @property
    def busy(self) -> bool:
        return self._busy

    def submit(self, keys: dict[bytes, bytes], row_keys: list[bytes], rids: list[bytes],
               columns: list[tuple[bytes, Sequence]]) -> bool:
        """Hand one batch over (see `open_batch` for the arguments); False if the helper
        is gone (it is not asked again: the caller opens its batches itself)."""
        if self._gone:
            return False
        try:
            _send(self._process.stdin, (keys, row_keys, rids, columns))
            self._columns = len(columns)
        except OSError:
            self._lost()
            return False
        self._busy = True
        return True

    def result(self) -> list[list | None]:
        """The opened columns of the batch submitted last: a list per column, or None for
        one the caller must open itself (every column, if the helper died meanwhile)."""
        self._busy = False
        try:
            return _receive(self._process.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            self._lost()
            return [None] * self._columns

    def _lost(self) -> None:
        self._gone = True
        log.warning("field opener: the helper process stopped; this walk opens its batches itself",
                    extra={"returncode": self._process.poll()})

    def close(self) -> None:
        """End the helper: asked to stop when idle, killed when it is still working on a
        batch (a walk that failed or stopped early)."""
        process = self._process
        try:
            if self._busy:
                process.kill()
            else:
                _send(process.stdin, None)
        except OSError:
            process.kill()
        finally:
            for stream in (process.stdin, process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
