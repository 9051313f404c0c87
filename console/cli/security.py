"""Security events the daemon recorded (failed logins, lockouts, new devices, ...)."""
from __future__ import annotations

import click

from strongroom.console.cli import CliState, emit, remote_options
from strongroom.console.cli.transport import run_remote


@click.group(name="security")
def security_group() -> None:
    """Security events."""


@security_group.command(name="events")
@click.option("--limit", default=30, show_default=True, type=click.IntRange(1, 1000))
@click.option("--type", "event_type")
@remote_options()
def security_events(state: CliState, limit: int, event_type: str | None, socket_path, as_json) -> None:
    """Logins, failures, lockouts and grants, newest first."""
    rows = run_remote(state, socket_path, lambda c: c.call("security.event.list", {"limit": limit, "event_type": event_type}))
    emit(as_json, rows, lambda items: [click.echo(
        f"{e['id']:>7} {e['occurred_at'][:19]} {e['severity']:<8} {e['event_type']:<20} "
        f"{e['username'] or '-':<14} {e['ip_address'] or '-'}  {e['description']}") for e in items])
