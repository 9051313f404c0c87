"""Opening many AES-256-GCM sealed values in one call: the inner loop of every bulk read
(exports, `clients list --all`, integrity scans, sync) and of unwrapping a batch's keys.

A bulk read of 100k clients opens a million fields under 100k keys. Through
`cryptography` that is a Python call per field (about 1 µs) and an AESGCM object per key
(about 3 µs): more than half of an export's time. `open_rows` does the same work in C
over OpenSSL (core/crypto/_gcm.c, built by `make install` where a compiler and OpenSSL's
headers are present: about 0.5 µs a field, keys as bytes), and here, with the same
checks, results and errors, through `cryptography` where it was not built. A batch's
columns go in one call: a row's key is then scheduled once for all its fields, and the
C loop opens them without the GIL, beside the thread that fetches the next batch.

The values keep their format (core.crypto.fields): `head | nonce (12) | ciphertext |
tag (16)`, where head is whatever the caller expects each value to start with (a field's
version byte and key id; nothing for a wrapped key)."""
from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

try:
    from strongroom.core.crypto._gcm import open_rows as _native_open_rows
except ImportError:             # not built here (no compiler or no OpenSSL headers)
    _native_open_rows = None

# Whether the C loop is in use; tests switch it off to hold both ways to one behaviour.
NATIVE = _native_open_rows is not None
NONCE, TAG, KEY = 12, 16, 32


def open_rows(keys: Sequence[bytes], columns: Sequence[Sequence[bytes | None]], prefixes: Sequence[bytes],
              tails: Sequence[bytes], heads: Sequence[bytes], *, text: bool,
              aeads: dict[bytes, AESGCM] | None = None) -> list[list] | None:
    """A batch of rows' sealed values opened: per column (one `prefixes` entry each),
    per row, the value sealed with the row's 32-byte key `keys[i]` and associated data
    `prefixes[c] + tails[i]`, once it is checked to start with the row's `heads[i]`:
    str (strict UTF-8) when `text`, else bytes; None where the value is None.

    None when any value is not of that usual shape (not bytes, too short, another head,
    a key not 32 bytes), before anything is opened: the caller then goes value by value
    and names the one at fault. Raises InvalidTag when one fails authentication, as
    AESGCM.decrypt does, and UnicodeDecodeError as bytes.decode does. `aeads` (the
    `cryptography` way only) keeps the AESGCM object of each key between calls."""
    if NATIVE:
        return _native_open_rows(keys, columns, prefixes, tails, heads, text)
    return _open_rows_python(keys, columns, prefixes, tails, heads, text, {} if aeads is None else aeads)


def _open_rows_python(keys: Sequence, columns: Sequence, prefixes: Sequence, tails: Sequence,
                      heads: Sequence, text: bool, aeads: dict[bytes, AESGCM]) -> list[list] | None:
    if not len(keys) == len(tails) == len(heads) or len(prefixes) != len(columns) \
            or any(len(column) != len(keys) for column in columns):
        raise ValueError("open_rows: keys, tails, heads and columns differ in length")
    if any(prefix.__class__ is not bytes for prefix in prefixes):
        raise TypeError("open_rows: each prefix must be bytes")
    for key, tail, head in zip(keys, tails, heads):
        if key.__class__ is not bytes or len(key) != KEY or tail.__class__ is not bytes or head.__class__ is not bytes:
            return None
    for column in columns:
        for blob, head in zip(column, heads):
            if blob is not None and (blob.__class__ is not bytes or len(blob) < len(head) + NONCE + TAG
                                     or not blob.startswith(head)):
                return None
    out = []
    for column, prefix in zip(columns, prefixes):
        values = []
        append = values.append
        for key, blob, tail, head in zip(keys, column, tails, heads):
            if blob is None:
                append(None)
                continue
            aead = aeads.get(key)
            if aead is None:
                aead = aeads[key] = AESGCM(key)
            at = len(head)
            plain = aead.decrypt(blob[at:at + NONCE], blob[at + NONCE:], prefix + tail)
            append(plain.decode() if text else plain)
        out.append(values)
    return out
