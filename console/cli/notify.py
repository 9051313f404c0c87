"""Notification channels: send a test through each."""
from __future__ import annotations

import sys


import click

from strongroom.console.cli import CliState, emit, remote_options
from strongroom.console.cli.transport import run_remote


@click.group(name="notify")
def notify_group() -> None:
    """Notifications."""


@notify_group.command(name="test")
@remote_options()
def notify_test(state: CliState, socket_path, as_json) -> None:
    """Send a test notification to every configured channel."""
    rows = run_remote(state, socket_path, lambda c: c.call("notification.test"))

    def human(items: list[dict]) -> None:
        if not items:
            click.echo("no notification channels configured ([notify] in the config)")
        for d in items:
            click.echo(f"{'ok  ' if d['ok'] else 'FAIL'} {d['channel']:<8} {d['target']}  {d['detail']}")
    emit(as_json, rows, human)
    if any(not d["ok"] for d in rows):
        sys.exit(1)
