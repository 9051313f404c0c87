"""Exports read in bulk: the database is asked a bounded number of questions per batch of
rows, never one per row or per client key, and the files say exactly what the plain
row-by-row reading says (masked and full)."""
from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from sqlalchemy import event

from strongroom.core.config import ExportSettings
from strongroom.core.db.engine import transaction
from strongroom.core.demo import client_records, session_records
from strongroom.core.jobs import export
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import clients as repo
from strongroom.core.repository import sessions as session_repo
from strongroom.core.repository.practices import create_practice

BATCH = 50
# Statements one batch may cost, whatever its size: the rows, the keys they need, and
# slack for a progress or paging query. A per-row or per-key query breaks this at once.
PER_BATCH = 3


def nothing(done, total, message):
    pass


@pytest.fixture
def practice(ctx):
    ctx.settings = ctx.settings.model_copy(update={"export": ExportSettings(batch_size=BATCH, max_per_hour=1000)})
    with transaction(ctx.engine) as conn:
        return create_practice(conn, SYSTEM, "Bulk Practice")


def add_clients(ctx, practice, n: int, seed: int) -> None:
    """`n` demo clients (each with its own data key) with two sessions each."""
    created: list = []
    with transaction(ctx.engine) as conn:
        repo.insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(n, seed=seed), created=created)
        session_repo.insert_sessions(conn, ctx.keyring, SYSTEM, session_records(created, 2, seed=seed, note_bytes=200))


def statements_of(ctx, **params) -> tuple[int, int]:
    """(statements sent to the database, rows exported) for one export run, from a
    keyring that has never seen a key (as a fresh daemon's)."""
    ctx.keyring._ciphers.clear()
    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(ctx.engine, "before_cursor_execute", count)
    try:
        result = export.run(ctx, {"actor": "system", **params}, nothing)
    finally:
        event.remove(ctx.engine, "before_cursor_execute", count)
    return len(seen), result["row_count"]


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
@pytest.mark.parametrize("masking", ["masked", "full"])
def test_export_round_trips_grow_with_batches_not_rows(ctx, practice, fmt, masking):
    """50 then 500 clients (100 then 1000 sessions, every client its own key): ten times
    the rows may cost only the extra batches' statements."""
    params = {"tables": ["clients", "therapy_sessions"], "format": fmt, "masking": masking}
    add_clients(ctx, practice, 50, seed=1)
    small, small_rows = statements_of(ctx, **params)
    add_clients(ctx, practice, 450, seed=2)
    large, large_rows = statements_of(ctx, **params)
    assert (small_rows, large_rows) == (150, 1500)
    extra_batches = (math.ceil(500 / BATCH) + math.ceil(1000 / BATCH)) - (math.ceil(50 / BATCH) + math.ceil(100 / BATCH))
    assert large - small <= PER_BATCH * extra_batches, (small, large)


def test_clients_list_reveal_asks_a_bounded_number_of_questions(ctx, practice):
    """A page of 500 revealed clients: one query for the rows, one for their keys, one
    audit entry; not one key query per client."""
    add_clients(ctx, practice, 500, seed=3)
    ctx.keyring._ciphers.clear()
    seen = []
    event.listen(ctx.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    with transaction(ctx.engine) as conn:
        rows = repo.list_clients(conn, ctx.keyring, SYSTEM, limit=500)
    assert len(rows) == 500 and rows[0]["ssn"].startswith("9")
    assert len(seen) <= 10, seen



def row_by_row(ctx, table: str, fmt: str, reveal: bool) -> bytes:
    """The file as the row-by-row reading wrote it before bulk reads: every field of
    every row opened on its own through Keyring.cipher, masked by core.masking, a
    shredded key read as [erased], written by the same document class."""
    from sqlalchemy import select

    from strongroom.core.crypto.fields import key_id_of
    from strongroom.core.db.encrypted import CLIENT_KEYED
    from strongroom.core.errors import KeyUnavailableError
    from strongroom.core.export import spec
    from strongroom.core.masking import mask_field
    from strongroom.core.repository.records import ERASED, MODELS, plain_value

    fields = spec.EXPORTABLE[table]
    model = MODELS[table].__table__
    records = []
    with ctx.engine.connect() as conn:
        for row in conn.execute(select(model).where(spec.where_clause(table, {})).order_by(model.c.id)).mappings():
            record = {}
            for field in fields:
                if field not in CLIENT_KEYED[table]:
                    record[field] = plain_value(row[field])
                    continue
                blob = row[f"{field}_enc"]
                try:
                    text = None if blob is None else ctx.keyring.cipher(conn, key_id_of(blob)).decrypt_text(
                        blob, table, field, row["id"])
                except KeyUnavailableError:
                    text = ERASED
                record[field] = text if reveal or text == ERASED else mask_field(field, text)
            records.append(record)
    stream = io.StringIO(newline="")
    document = export.DOCUMENTS[fmt]
    document = getattr(document, "Document", document)(stream)
    document.begin_table(table, fields)
    document.write_rows(records)
    document.end_table()
    return stream.getvalue().encode()


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
@pytest.mark.parametrize("masking", ["masked", "full"])
def test_export_files_are_byte_for_byte_what_row_by_row_reading_wrote(ctx, practice, fmt, masking):
    """Demo clients and sessions over several batches, one client erased (its key
    shredded): the files say exactly what the plain reading says."""
    add_clients(ctx, practice, 120, seed=5)
    with transaction(ctx.engine) as conn:
        erased = repo.list_clients(conn, ctx.keyring, SYSTEM, limit=3)[2]["id"]
        ctx.keyring.destroy_client_keys(conn, erased)
    result = export.run(ctx, {"actor": "system", "tables": ["clients", "therapy_sessions"], "format": fmt,
                              "masking": masking}, nothing)
    for table in ("clients", "therapy_sessions"):
        written = (Path(result["location"]) / f"{table}.{fmt}").read_bytes()
        assert written == row_by_row(ctx, table, fmt, masking == "full")
        assert b"[erased]" in written
