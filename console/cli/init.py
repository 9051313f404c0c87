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
@click.option("--join", "join_url", metavar="URL",
              help="Join the practice whose database is at URL as a new site (copies its practice, accounts "
                   "and keys; clients arrive with the first sync).")
@click.option("--peer-name", default="central", show_default=True, help="Name of the joined site (with --join).")
@click.option("--kek-file", type=click.Path(dir_okay=False, path_type=Path),
              help="The practice's key file (with --join; `strongroom keys recover` makes one from the kit).")
@pass_state
def group(state: CliState, practice_name: str, database_url: str | None, demo: bool, clients: int,
          join_url: str | None, peer_name: str, kek_file: Path | None) -> None:
    """Create a data directory (mode 0700): config, key file, migrated database."""
    from strongroom.core.config import ENV_DATA_DIR
    from strongroom.core.datadir import DEFAULT_SCHEDULES, init_data_dir

    if not state.data_dir:
        raise ConfigError(f"init needs --data-dir DIR (or {ENV_DATA_DIR})")
    if demo and join_url:
        raise ConfigError("--demo and --join do not go together: a joined site takes its data from its peer")
    principal = Principal(actor=local_actor(), permissions=frozenset({"*"}))
    settings = init_data_dir(Path(state.data_dir), practice_name=practice_name,
                             principal=principal, database_url=database_url, schedules=DEFAULT_SCHEDULES,
                             join_url=join_url, peer_name=peer_name, kek_file=kek_file)
    click.echo(f"initialised {settings.data_dir}")
    click.echo(f"  config    {settings.source}")
    click.echo(f"  database  {settings.database.url.split('@')[-1]}")
    click.echo(f"  key file  {settings.keys.kek_file}  <- back this up: strongroom keys export-kit")
    if join_url:
        click.echo(f"  joined    sync peer {peer_name}: clients arrive with `strongroom sync run {peer_name}`")
    click.echo("  schedule  " + ", ".join(f"{k} {v}" for k, v in settings.schedules.items()) + " (UTC)")
    if demo:
        from strongroom.console.cli.demo import create_demo_admin, seed_demo

        seed_demo(state, clients=clients, sessions_per_client=10)
        create_demo_admin(state)
