"""`strongroom demo seed`: synthetic demo data (never real people)."""
from __future__ import annotations

import itertools

import click

from strongroom.console.cli import CliState, local_actor, pass_state
from strongroom.core.principal import Principal

SLICE = 1000


@click.group(name="demo")
def group() -> None:
    """Synthetic demo data."""


def seed_demo(state: CliState, *, clients: int, sessions_per_client: int, seed: int = 7) -> tuple[int, int]:
    """Insert synthetic clients and their sessions, a slice of clients at a time (memory
    stays flat for millions), all in one transaction; returns the counts."""
    from strongroom.core.db.engine import transaction
    from strongroom.core.demo import client_records, seed_files, seed_retention, session_records
    from strongroom.core.repository.clients import insert_clients
    from strongroom.core.repository.practices import only_practice
    from strongroom.core.repository.sessions import insert_sessions

    ctx = state.ctx
    principal = Principal(actor=local_actor(), permissions=frozenset({"*"}))
    n_clients = n_sessions = 0
    records = client_records(clients, seed=seed)
    with transaction(ctx.engine) as conn:
        practice_id = only_practice(conn)
        for start in range(0, clients, SLICE):
            created: list = []
            n_clients += insert_clients(conn, ctx.keyring, principal, practice_id,
                                        itertools.islice(records, SLICE), created=created)
            n_sessions += insert_sessions(conn, ctx.keyring, principal,
                                          session_records(created, sessions_per_client, seed=seed + start))
        seed_retention(conn)
        n_files = seed_files(conn, ctx, principal)
    click.echo(f"seeded {n_clients} synthetic clients and {n_sessions} sessions (all PHI encrypted), {n_files} "
               "client files, and retention policies with a legal hold and a pending erasure request for the "
               "Retention tab")
    seed_satellite(state, seed=seed)
    return n_clients, n_sessions


def seed_satellite(state: CliState, *, seed: int = 7) -> None:
    """The demo's second site (core.demo.seed_second_site) in `satellite/` of the data
    directory, unless it is there already (a second `demo seed`)."""
    from strongroom.core.demo import SATELLITE, seed_second_site

    ctx = state.ctx
    target = ctx.settings.data_dir / SATELLITE
    if target.exists():
        click.echo(f"second site {target} already exists: left as it is")
        return
    made = seed_second_site(ctx, target, actor=local_actor(), seed=seed)
    click.echo(f"second site {target} (SQLite) joined the practice as sync peer {SATELLITE}, synced, was edited "
               f"offline on both sides and synced again: {len(made['conflicts'])} sync conflicts to resolve "
               "in the console's Sync tab")


def create_demo_admin(state: CliState) -> dict:
    """A demo operator admin whose credentials are printed and kept in the data
    directory (0600): demo data only, never a real practice's."""
    import secrets

    from strongroom.core.auth.users import create_user
    from strongroom.core.db.engine import transaction
    from strongroom.core.db.models import Role
    from strongroom.core.fsutil import write_atomic
    from strongroom.core.repository.practices import only_practice

    ctx = state.ctx
    password = "demo-" + secrets.token_urlsafe(12)
    with transaction(ctx.engine) as conn:
        _, enrolment = create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "demo-admin",
                                   password, Role.OP_ADMIN, full_name="Demo Administrator",
                                   actor=local_actor())
    creds = {"username": "demo-admin", "password": password, "totp_secret": enrolment.secret}
    text = "".join(f"{k}={v}\n" for k, v in creds.items())
    write_atomic(ctx.settings.data_dir / "demo-credentials.txt", text.encode(), mode=0o600)
    click.echo("demo admin (synthetic demo only):")
    click.echo("  username     demo-admin")
    click.echo(f"  password     {password}")
    click.echo(f"  TOTP secret  {enrolment.secret}   (otpauth URI: {enrolment.uri})")
    click.echo(f"  saved in     {ctx.settings.data_dir / 'demo-credentials.txt'}")
    return creds


@group.command(name="seed")
@click.option("--clients", default=300, show_default=True, type=click.IntRange(1, 5_000_000))
@click.option("--sessions-per-client", default=10, show_default=True, type=click.IntRange(0, 1000))
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same data).")
@pass_state
def seed_cmd(state: CliState, clients: int, sessions_per_client: int, seed: int) -> None:
    """Add synthetic clients and therapy sessions to the only practice."""
    seed_demo(state, clients=clients, sessions_per_client=sessions_per_client, seed=seed)


@group.command(name="overview")
@pass_state
def overview_cmd(state: CliState) -> None:
    """What the demo data directory holds: counts, keys, audit chain, a masked sample."""
    from sqlalchemy import func, select

    from strongroom.core import audit
    from strongroom.core.db.engine import transaction
    from strongroom.core.db.models import Client, DataKey, TherapySession
    from strongroom.core.repository.clients import list_clients
    from strongroom.core.sync.peers import list_peers

    ctx = state.ctx
    principal = Principal(actor=local_actor(), permissions=frozenset({"table:clients:read"}))
    with transaction(ctx.engine) as conn:
        n_clients = conn.execute(select(func.count()).select_from(Client.__table__)).scalar_one()
        n_sessions = conn.execute(select(func.count()).select_from(TherapySession.__table__)).scalar_one()
        keys = conn.execute(select(DataKey.__table__.c.state, func.count())
                            .group_by(DataKey.__table__.c.state)).all()
        sample = list_clients(conn, ctx.keyring, principal, limit=5)
        peers = [p for p in list_peers(conn) if not p["inbound"]]
    chain = audit.verify(ctx.engine)
    click.echo(f"Strongroom data directory {ctx.settings.data_dir}")
    click.echo(f"  practice        {ctx.settings.practice_name}")
    click.echo(f"  database        {ctx.engine.dialect.name}")
    click.echo(f"  clients         {n_clients}")
    click.echo(f"  sessions        {n_sessions}")
    click.echo("  data keys       " + ", ".join(f"{n} {state_.value}" for state_, n in keys))
    click.echo(f"  KEK id          {ctx.keyring.kek_id}")
    click.echo(f"  audit chain     {'intact' if chain.ok else 'BROKEN at ' + str(chain.broken_id)}"
               f" ({chain.checked} entries)")
    for peer in peers:
        synced = "never synced" if peer["seconds_since_sync"] is None else \
            f"synced {int(peer['seconds_since_sync'])}s ago"
        click.echo(f"  sync peer       {peer['name']}: {synced}, {peer['pending_changes'] or 0} changes to send, "
                   f"{peer['open_conflicts']} open conflicts")
    click.echo("  sample (masked: this view lacks phi:read)")
    for row in sample:
        click.echo(f"    {row['last_name']:<6} {row['first_name']:<6} {row['email']:<28} {row['ssn']}  {row['phone']}")
    click.echo("")
    click.echo("Try:  .venv/bin/strongroom --data-dir .demo clients list --reveal")
    click.echo("      .venv/bin/strongroom --data-dir .demo audit tail")
    click.echo("      .venv/bin/strongroom --data-dir .demo keys status")
