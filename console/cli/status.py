"""What the daemon is doing and the configuration it runs with."""
from __future__ import annotations

import click

from strongroom.console.cli import CliState, emit, remote_options
from strongroom.console.cli.transport import run_remote
from strongroom.console.helpers.text import counted


@click.command(name="status")
@remote_options()
def status_cmd(state: CliState, socket_path: str | None, as_json: bool) -> None:
    """What the daemon is doing: role, uptime, running jobs, next runs."""
    data = run_remote(state, socket_path, lambda c: c.call("status"))

    def human(d: dict) -> None:
        click.echo(f"strongroomd {d['version']} on {d['host']} (pid {d['pid']}): {d['role']}, "
                   f"up {d['uptime_seconds']:.0f}s, database {d['database']}")
        for job in d["running_jobs"]:
            progress = counted(job["done"], job["total"], job.get("unit"))
            message = (f"  {job['message']}" if job["message"]
                       else "  (covers every practice: its progress message is the operator's)"
                       if job.get("withheld") else "")
            click.echo(f"  running  {job['kind']:<14} {progress}{message}")
        for kind, when in sorted(d["next_runs"].items()):
            click.echo(f"  next     {kind:<14} {when}")
        if not d["running_jobs"] and not d["next_runs"]:
            click.echo("  no jobs running, none scheduled")
    emit(as_json, data, human)


@click.group(name="config")
def config_group() -> None:
    """The running configuration."""


@config_group.command(name="show")
@remote_options(json=False)
def config_show(state: CliState, socket_path) -> None:
    """Print the daemon's configuration as JSON, secrets redacted."""
    import json

    click.echo(json.dumps(run_remote(state, socket_path, lambda c: c.call("config.show")), indent=2))
