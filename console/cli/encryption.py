"""`strongroom encryption ...`: the practice's encryption level (core/encryption_levels.py).

Offline, on the data directory, as the local operator: `show` checks every requirement
of the level in force now, with evidence; `set LEVEL` puts another in force only when
the running configuration meets it (refused, exit 4, naming what is missing).
"""
from __future__ import annotations

import uuid

import click

from strongroom.console.cli import CliState, emit, json_option, local_actor, pass_state

LEVEL_CHOICE = click.Choice(["standard", "high", "military", "none"])


@click.group(name="encryption")
def group() -> None:
    """Encryption level: what is in force and its evidence; set another."""


def _human(status: dict) -> None:
    click.echo(f"encryption level {status['level']}: {'met' if status['met'] else 'NOT MET'} "
               f"(levels: {', '.join(status['levels'])})")
    for r in status["requirements"]:
        click.echo(f"  [{'x' if r['met'] else ' '}] {r['level']:<8} {r['name']}")
        if not r["met"] and r["fix"]:
            click.echo(f"               to meet it: {r['fix']}")


def _practice(conn, practice_id: uuid.UUID | None) -> uuid.UUID:
    from strongroom.core.repository.practices import only_practice
    return practice_id or only_practice(conn)


@group.command(name="show")
@click.option("--practice-id", type=click.UUID, help="Practice (default: the only one).")
@json_option
@pass_state
def show_cmd(state: CliState, practice_id: uuid.UUID | None, as_json: bool) -> None:
    """The level in force and each of its requirements, checked now, with evidence."""
    from strongroom.core import encryption_levels
    from strongroom.core.db.engine import transaction

    with transaction(state.ctx.engine, read_only=True) as conn:
        status = encryption_levels.status(state.ctx.settings, conn, _practice(conn, practice_id))
    emit(as_json, status, _human)


@group.command(name="set")
@click.argument("level", type=LEVEL_CHOICE)
@click.option("--practice-id", type=click.UUID, help="Practice (default: the only one).")
@json_option
@pass_state
def set_cmd(state: CliState, level: str, practice_id: uuid.UUID | None, as_json: bool) -> None:
    """Put LEVEL in force: standard, high or military (none is refused)."""
    from strongroom.core import encryption_levels
    from strongroom.core.db.engine import transaction

    with transaction(state.ctx.engine) as conn:
        status = encryption_levels.set_level(state.ctx.settings, conn, _practice(conn, practice_id), level,
                                             actor=local_actor())
    emit(as_json, status, _human)
