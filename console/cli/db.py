"""`strongroom db ...`: schema migrations."""
from __future__ import annotations

import click

from strongroom.console.cli import CliState, emit, json_option, local_actor, pass_state


@click.group(name="db")
def group() -> None:
    """Database schema."""


@group.command(name="upgrade")
@pass_state
def upgrade_cmd(state: CliState) -> None:
    """Bring the schema to the newest revision (in one transaction)."""
    from strongroom.core import audit
    from strongroom.core.db.engine import transaction
    from strongroom.core.db.migrate import upgrade

    engine = state.ctx.engine       # through the key file: the entry below is sealed like any other
    before, after = upgrade(engine)
    if before != after:
        with transaction(engine) as conn:
            audit.append(conn, actor=local_actor(), action="CONFIG",
                         details={"event": "db_upgrade", "from": before, "to": after})
    click.echo(f"schema at {after}" + ("" if before != after else " (already current)"))


@group.command(name="status")
@json_option
@pass_state
def status_cmd(state: CliState, as_json: bool) -> None:
    """Show the schema revision and whether it is current."""
    from strongroom.core.db.engine import make_engine
    from strongroom.core.db.migrate import current_revision, head_revision

    engine = make_engine(state.settings.database.url)
    try:
        data = {"current": current_revision(engine), "head": head_revision()}
    finally:
        engine.dispose()
    data["up_to_date"] = data["current"] == data["head"]
    emit(as_json, data, lambda d: click.echo(
        f"schema {d['current'] or '(empty)'}; newest {d['head']}" + ("" if d["up_to_date"] else "  -> run `strongroom db upgrade`")))
