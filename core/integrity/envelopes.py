"""Plaintext where ciphertext belongs.

Every encrypted column (core/db/encrypted.py) must hold an envelope of this keyring:
the format version, the id of a data key that exists, and a length between the
smallest possible envelope and MAX_FIELD_BYTES. That test is cheap and runs on every
value. Proving an envelope is not just well formed but sealed for its place means
opening it under its row's AAD (table, field, row id): a sample of rows per table by
default, every row with `full` (the nightly run). Values opened are dropped at once;
only row ids and counts leave this module.
"""
from __future__ import annotations

import random
from collections import Counter

from sqlalchemy import func, select

from strongroom.core.context import Context
from strongroom.core.crypto.fields import FORMAT_VERSION, MIN_CIPHERTEXT, associated_data
from strongroom.core.db.encrypted import CLIENT_KEYED, SYSTEM_KEYED, column
from strongroom.core.db.models import Base, DataKey, KeyState
from strongroom.core.db.paging import stream
from strongroom.core.db.types import utcnow
from strongroom.core.errors import CryptoError
from strongroom.core.integrity import FAIL, MAX_EVIDENCE_IDS, OK, record

BATCH = 2000
# A field is a name, a date, a note or a medical history: megabytes are not a field.
MAX_FIELD_BYTES = 4 * 1024 * 1024


def _key_states(conn) -> dict[bytes, KeyState]:
    keys = DataKey.__table__
    return {row.id.bytes: row.state for row in conn.execute(select(keys.c.id, keys.c.state))}


def malformation(blob: bytes, known: dict[bytes, KeyState]) -> str | None:
    """Why `blob` is not an envelope of this keyring (short, version, unknown_key,
    too_long), or None if it is well formed."""
    if len(blob) < MIN_CIPHERTEXT:
        return "short"
    if blob[0] != FORMAT_VERSION:
        return "version"
    if len(blob) > MAX_FIELD_BYTES:
        return "too_long"
    if bytes(blob[1:17]) not in known:
        return "unknown_key"
    return None


def _open_batch(ctx: Context, conn, table: str, fields: tuple[str, ...], rows, known) -> tuple[int, int, list]:
    """Open every field of `rows` ((id, *encrypted columns) tuples) under its AAD;
    (opened, skipped on shredded keys, bad row ids)."""
    wanted = {bytes(blob[1:17]) for row in rows for blob in row[1:] if blob is not None}
    batch_keys = ctx.keyring.batch_keys(conn, wanted)
    at_once = _open_at_once(batch_keys, table, fields, rows)
    if at_once is not None:
        return at_once, 0, []
    opened, shredded, bad = 0, 0, []
    for row in rows:
        for field, blob in zip(fields, row[1:]):
            if blob is None:
                continue
            blob = bytes(blob)
            cipher = batch_keys.get(blob[1:17])
            if cipher is None:
                if known.get(blob[1:17]) == KeyState.DESTROYED:
                    shredded += 1   # erased on purpose; the keys check judges live rows on them
                    continue
                bad.append(str(row[0]))
                break
            try:
                cipher.decrypt(blob, associated_data(table, field, row[0]))
            except CryptoError:
                bad.append(str(row[0]))
                break
            opened += 1
    return opened, shredded, bad


def _open_at_once(batch_keys, table: str, fields: tuple[str, ...], rows) -> int | None:
    """How many fields `rows` hold, when every one of them opens under its row's AAD in
    one call (core.crypto.bulk, in C where built): the usual batch, each row's fields
    sealed with one usable key. None for any other batch, which `_open_batch` then goes
    through field by field to count and name what does not open."""
    live = [row for row in rows if any(blob is not None for blob in row[1:])]
    if not live:
        return 0
    heads = [next(bytes(blob[:17]) for blob in row[1:] if blob is not None) for row in live]
    deks = batch_keys.deks_of([head[1:] for head in heads])
    if deks is None:
        return None
    columns = [[row[n] for row in live] for n in range(1, len(fields) + 1)]
    prefixes = [f"{table}\0{field}\0".encode() for field in fields]
    if batch_keys.open_rows(deks, columns, prefixes, [str(row[0]).encode() for row in live], heads,
                            text=False) is None:
        return None
    return sum(blob is not None for column in columns for blob in column)


def check_envelopes(ctx: Context, table_name: str, progress, *, sample: int, full: bool) -> dict:
    """One table's encrypted columns: every value well formed, `sample` rows (or all,
    with `full`) opened under their AAD."""
    started = utcnow()
    table = Base.metadata.tables[table_name]
    fields = CLIENT_KEYED.get(table_name) or SYSTEM_KEYED[table_name]
    cols = [column(f) for f in fields]
    malformed: Counter = Counter()
    bad_ids: list[str] = []
    failed_open: list[str] = []
    checked = values = opened = shredded = 0
    rng = random.Random()
    with ctx.engine.connect() as conn:
        known = _key_states(conn)
        total = conn.execute(select(func.count()).select_from(table)).scalar_one()
        rate = 1.0 if full or total <= sample else sample / total
        # Only the id and the ciphertext, in one statement: the scan reads what it checks.
        query = select(table.c.id, *(table.c[c] for c in cols)).order_by(table.c.id)
        for rows in stream(conn, query, size=BATCH):
            to_open = []
            for row in rows:
                wrong = False
                for col, blob in zip(cols, row[1:]):
                    if blob is None:
                        continue
                    values += 1
                    why = malformation(bytes(blob), known)
                    if why:
                        malformed[f"{col}:{why}"] += 1
                        wrong = True
                if wrong:
                    bad_ids.append(str(row[0]))
                elif rate >= 1.0 or rng.random() < rate:
                    to_open.append(row)
            if to_open:
                n, s, bad = _open_batch(ctx, conn, table_name, fields, to_open, known)
                opened, shredded = opened + n, shredded + s
                failed_open += bad
            checked += len(rows)
            progress(checked, total, f"ciphertext of {table_name}")
    status = FAIL if bad_ids or failed_open else OK
    return record(ctx, "envelopes", f"{table_name} ciphertext", table_name, status,
                  "every encrypted value is an envelope of this keyring and opens in its row",
                  f"{len(bad_ids)} rows malformed, {len(failed_open)} fail to open",
                  {"rows_checked": checked, "values_checked": values, "malformed_rows": len(bad_ids),
                   "malformed": dict(sorted(malformed.items())), "opened": opened,
                   "opened_mode": "full" if rate >= 1.0 else f"sample of {sample} rows",
                   "skipped_shredded": shredded, "failed_to_open": len(failed_open),
                   "ids": (bad_ids + failed_open)[:MAX_EVIDENCE_IDS]}, started)


def encrypted_tables() -> list[str]:
    """Every table that has encrypted columns."""
    return [*CLIENT_KEYED, *SYSTEM_KEYED]
