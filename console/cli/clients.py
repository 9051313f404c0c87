"""`strongroom clients ...`: look at client records from the data directory.

Masked by default; `--reveal` shows plaintext PHI and is audited as a READ, as any
disclosure must be.
"""
from __future__ import annotations

import json
import uuid

import click
import orjson

from strongroom.console.cli import CliState, emit, json_option, local_actor, pass_state
from strongroom.console.helpers.text import fit
from strongroom.core.bulk import collector_paused
from strongroom.core.principal import Principal

reveal_option = click.option("--reveal", is_flag=True,
                             help="Show plaintext PHI (audited as a READ).")
_COLUMNS = ("id", "last_name", "first_name", "email", "phone", "ssn", "status")


def _principal(reveal: bool) -> Principal:
    perms = {"table:clients:read", "table:therapy_sessions:read"}
    if reveal:
        perms.add("phi:read")
    return Principal(actor=local_actor(), permissions=frozenset(perms))


_WIDTHS = {"id": 36, "last_name": 14, "first_name": 10, "email": 28, "phone": 14, "ssn": 11, "status": 8}


def _table(rows: list[dict], *, header: bool = True) -> None:
    if header:
        click.echo("  ".join(c.upper().ljust(_WIDTHS[c]) for c in _COLUMNS))
    for row in rows:
        click.echo("  ".join(fit(str(row[c] or ""), _WIDTHS[c]).ljust(_WIDTHS[c]) for c in _COLUMNS))


# json.dumps(row, sort_keys=True, default=str), without building an encoder per record:
# the fallback for a record orjson will not write.
_RECORD_JSON = json.JSONEncoder(sort_keys=True, default=str).encode
# Times and dates still go through str, as `emit` and the fallback print them.
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def _record_json(row: dict) -> str:
    """One record as compact JSON with sorted keys, non-ASCII as UTF-8: orjson's C writes
    it (measured at 100k clients: a third of `--all --reveal --json` went to the json
    module), and the json module the rare record orjson refuses (an integer beyond 64
    bits). The same values as `emit` prints; only the spacing differs."""
    try:
        return orjson.dumps(row, option=_ORJSON_OPTIONS, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        return _RECORD_JSON(row)


def _batch_json(batch) -> str:
    """A batch's records as `_record_json` writes each, joined by `,\n`. A revealed batch
    comes as columns (records.Columns): its lines are written from them in C
    (jsondoc.columns_lines: the same values, keys sorted; the line breaks U+0085, U+2028
    and U+2029 escaped too, so a record is always one line), saving a dict and an
    orjson call per record; where C does not write a value, from records as before."""
    from strongroom.core.export.jsondoc import columns_lines      # with the repository: loaded already
    from strongroom.core.repository.records import Columns

    if isinstance(batch, Columns):
        lines = columns_lines(batch.names, batch.columns, sort_keys=True)
        if lines is not None:
            return lines[:-1].replace(b"\n", b",\n").decode()   # no newline inside a line: escaped
        batch = batch.records()
    return ",\n".join(map(_record_json, batch))


def _stream_json(batches) -> int:
    """A JSON array written a batch at a time, one record a line (the records as `emit`
    prints them, compact): memory holds one batch, whatever the number of clients."""
    count = 0
    while True:
        # The collector paused while a batch is read and printed, the batch dropped before
        # it is back (core.bulk; the repository keeps nothing of a batch handed out).
        with collector_paused():
            rows = next(batches, None)
            if rows is None:
                break
            text = _batch_json(rows)
            size = len(rows)
            del rows
        if size:
            click.echo(("[\n" if not count else ",\n") + text, nl=False)
            count += size
    click.echo("[]" if not count else "\n]")
    return count


@click.group(name="clients")
def group() -> None:
    """Client records (masked unless --reveal)."""


@group.command(name="list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@click.option("--after", "after_id", type=click.UUID, help="Page on: ids after this one.")
@click.option("--all", "every", is_flag=True,
              help="Every client (after --after), streamed a page at a time; --limit does not apply.")
@reveal_option
@json_option
@pass_state
def list_cmd(state: CliState, limit: int, after_id: uuid.UUID | None, every: bool, reveal: bool,
             as_json: bool) -> None:
    """List clients in id order."""
    from strongroom.core.db.engine import transaction
    from strongroom.core.repository import clients as repo

    if every:
        # A read-only transaction for the stream (on SQLite it takes no write lock for its
        # length); each batch's READ commits on its own before the batch is printed.
        with transaction(state.ctx.engine, read_only=True) as conn:
            batches = repo.stream_clients(conn, state.ctx.keyring, _principal(reveal), after_id=after_id,
                                          printed=as_json, audit_engine=state.ctx.engine, as_columns=as_json)
            if as_json:
                _stream_json(batches)
                return
            count = 0
            for rows in batches:
                _table(rows, header=not count)
                count += len(rows)
        click.echo(f"({count} clients{'' if reveal else '; PHI masked, --reveal to show'})")
        return
    with transaction(state.ctx.engine) as conn:
        rows = repo.list_clients(conn, state.ctx.keyring, _principal(reveal), limit=limit, after_id=after_id)
        total = repo.count_clients(conn)
    emit(as_json, rows, _table)
    if not as_json:
        click.echo(f"({len(rows)} of {total} clients{'' if reveal else '; PHI masked, --reveal to show'})")


@group.command(name="show")
@click.argument("client_id", type=click.UUID)
@reveal_option
@json_option
@pass_state
def show_cmd(state: CliState, client_id: uuid.UUID, reveal: bool, as_json: bool) -> None:
    """One client with their sessions."""
    from strongroom.core.db.engine import transaction
    from strongroom.core.repository import clients as repo, sessions as sessions_repo

    principal = _principal(reveal)
    with transaction(state.ctx.engine) as conn:
        record = repo.get_client(conn, state.ctx.keyring, principal, client_id)
        record["sessions"] = sessions_repo.list_sessions(conn, state.ctx.keyring, principal, client_id, limit=20)

    def human(r: dict) -> None:
        for key, value in r.items():
            if key != "sessions":
                click.echo(f"{key:>22}: {value}")
        click.echo(f"{'sessions':>22}: {len(r['sessions'])} (newest 20)")
        for s in r["sessions"]:
            click.echo(f"{'':>24}{s['starts_at']:%Y-%m-%d %H:%M} {s['status']:<10} {fit(s['notes'] or '', 60)}")

    emit(as_json, record, human)


@group.command(name="find")
@click.option("--email")
@click.option("--ssn-last4")
@click.option("--last-name")
@reveal_option
@json_option
@pass_state
def find_cmd(state: CliState, email: str | None, ssn_last4: str | None, last_name: str | None,
             reveal: bool, as_json: bool) -> None:
    """Find clients by email, SSN last four or last name (blind index; nothing decrypted to search)."""
    from strongroom.core.db.engine import transaction
    from strongroom.core.repository import clients as repo

    with transaction(state.ctx.engine) as conn:
        rows = repo.find_clients(conn, state.ctx.keyring, _principal(reveal), email=email,
                                 ssn_last4=ssn_last4, last_name=last_name)
    emit(as_json, rows, _table)
