"""`strongroom init`: create a data directory."""
from __future__ import annotations

from pathlib import Path

import click

from strongroom.console.cli import CliState, local_actor, pass_state
from strongroom.core.errors import ConfigError
from strongroom.core.principal import Principal


@click.command(name="init")
@click.option("--practice-name", default="My Practice", show_default=True)
@click.option("--database-url", help="Use this database instead of an embedded SQLite file.")
@click.option("--demo", is_flag=True, help="Also create a demo admin and synthetic demo data.")
@click.option("--clients", default=300, show_default=True, help="Demo clients (with --demo).")
@pass_state
def group(state: CliState, practice_name: str, database_url: str | None, demo: bool, clients: int) -> None:
    """Create a data directory (mode 0700): config, key file, migrated database."""
    from strongroom.core.config import ENV_DATA_DIR
    from strongroom.core.datadir import DEFAULT_SCHEDULES, init_data_dir

    if not state.data_dir:
        raise ConfigError(f"init needs --data-dir DIR (or {ENV_DATA_DIR})")
    principal = Principal(actor=local_actor(), permissions=frozenset({"*"}))
    settings = init_data_dir(Path(state.data_dir), practice_name=practice_name,
                             principal=principal, database_url=database_url, schedules=DEFAULT_SCHEDULES)
    click.echo(f"initialised {settings.data_dir}")
    click.echo(f"  config    {settings.source}")
    click.echo(f"  database  {settings.database.url.split('@')[-1]}")
    click.echo(f"  key file  {settings.keys.kek_file}  <- back this up: strongroom keys export-kit")
    click.echo("  schedule  " + ", ".join(f"{k} {v}" for k, v in settings.schedules.items()) + " (UTC)")
    if demo:
        from strongroom.console.cli.demo import create_demo_admin, seed_demo

        seed_demo(state, clients=clients, sessions_per_client=10)
        create_demo_admin(state)
