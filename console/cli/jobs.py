"""Job runs through the daemon: list, run (following progress), inspect, cancel; the
kinds and their params. Other command groups start their jobs with `start_job`."""
from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Callable

from typing import TYPE_CHECKING

import click

from strongroom.console.cli import CliState, emit, remote_options
from strongroom.console.cli.transport import run_remote
from strongroom.console.helpers.text import counted

if TYPE_CHECKING:  # ZeroMQ and the config models load only when a command talks to the daemon
    from strongroom.console.client import Client


@click.group(name="jobs")
def jobs_group() -> None:
    """Job runs: list, run, inspect, cancel; the kinds and their params."""


def _print_runs(rows: list[dict]) -> None:
    for r in rows:
        click.echo(f"{r['id']}  {r['job_kind']:<13} {r['status']:<11} {r['trigger']:<9} "
                   f"{(r['queued_at'] or '')[:19]}  {r['error'] or ''}")


@jobs_group.command(name="list")
@click.option("--kind")
@click.option("--status", type=click.Choice(["queued", "running", "succeeded", "failed", "interrupted", "cancelled"]))
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@remote_options()
def jobs_list(state: CliState, kind, status, limit, socket_path, as_json) -> None:
    """Recent runs, newest first."""
    args = {"kind": kind, "status": status, "limit": limit}
    emit(as_json, run_remote(state, socket_path, lambda c: c.call("job.list", args)), _print_runs)


def _print_kinds(kinds: list[dict]) -> None:
    from strongroom.core.protocol import schema_type

    for k in kinds:
        how = "planned, not in this release" if k["planned"] else (
            "on request only" if k["on_request_only"] else "schedulable")
        click.echo(f"{k['kind']:<14} {k['summary']}  [{how}{', per backup configuration' if k['per_configuration'] else ''}]")
        schema = k["params"]
        for name, spec in schema.get("properties", {}).items():
            given = "required" if name in schema.get("required", []) else f"default {json.dumps(spec.get('default'))}"
            click.echo(f"    {name:<16} {schema_type(spec, null=False):<22} {given:<16} {spec.get('description', '')}")


@jobs_group.command(name="kinds")
@remote_options()
def jobs_kinds(state: CliState, socket_path, as_json) -> None:
    """Every job kind, how it may be started, and the params `jobs run --param` takes."""
    emit(as_json, run_remote(state, socket_path, lambda c: c.call("job.kind.list")), _print_kinds)


def _params(values: tuple[str, ...]) -> dict:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter("expected KEY=VALUE", param_hint="--param")
        out[key] = value
    return out


@jobs_group.command(name="run")
@click.argument("kind")
@click.option("--param", "params", multiple=True,
              help="KEY=VALUE passed to the job (repeatable); `strongroom jobs kinds` lists each kind's.")
@click.option("--wait", is_flag=True, help="Show progress and exit non-zero if the job fails.")
@remote_options()
def jobs_run(state: CliState, kind: str, params: tuple[str, ...], wait: bool, socket_path, as_json) -> None:
    """Start a job now."""
    start_job(state, socket_path, kind, _params(params), wait=wait, as_json=as_json)


def start_job(state: CliState, socket_path: str | None, kind: str, params: dict, *,
              wait: bool, as_json: bool) -> None:
    """Start a run through the daemon; with `wait`, follow it and exit 1 unless it succeeds."""
    args = {"kind": kind, "params": params}
    if not wait:
        run = run_remote(state, socket_path, lambda c: c.call("job.run", args))
        emit(as_json, run, lambda r: click.echo(f"started {r['job_kind']} run {r['id']}"))
        return
    final = run_remote(state, socket_path, lambda c: wait_for_run(c, args, quiet=as_json))
    emit(as_json, final, lambda r: click.echo(f"{r['job_kind']} run {r['id']} {r['status']}"
                                              + (f": {r['error']}" if r["error"] else "")))
    if final["status"] != "succeeded":
        sys.exit(1)


def dry_run(state: CliState, socket_path: str | None, kind: str, params: dict, *, as_json: bool,
            human: Callable[[dict], None]) -> None:
    """Run a job with dry_run, wait for it and print the plan its result holds.

    A sysadmin who asks for a dry run wants the plan on the terminal, not a run id to
    look up: so the run is always followed (it changes nothing; it is still a recorded
    run, under the job's own permission, so its id comes with the plan). Exit 1 unless
    it succeeds."""
    args = {"kind": kind, "params": {**params, "dry_run": "true"}}
    final = run_remote(state, socket_path, lambda c: wait_for_run(c, args, quiet=as_json))
    if final["status"] != "succeeded":
        emit(as_json, final, lambda r: click.echo(f"{kind} dry run {r['id']} {r['status']}"
                                                  + (f": {r['error']}" if r["error"] else "")))
        sys.exit(1)
    emit(as_json, {**final["result"], "run_id": final["id"]}, human)


async def wait_for_run(client: Client, args: dict, *, quiet: bool, cmd: str = "job.run") -> dict:
    """Start a run (with `cmd`, job.run or a command that answers like it) and follow
    it: progress events for the bar, job.get as the truth (events can be missed; the
    job_runs row cannot)."""
    events = client.subscribe("job.")
    await asyncio.sleep(0.05)  # let the subscription reach the daemon before the run starts
    run = await client.call(cmd, args)
    run_id = run["id"]
    bar = None if quiet or not sys.stderr.isatty() else click.progressbar(length=100, label=run["job_kind"], file=sys.stderr)
    pending = asyncio.ensure_future(events.recv())
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=1.0)
            if done:
                _topic, data = pending.result()
                pending = asyncio.ensure_future(events.recv())
                if data.get("run_id") == run_id and data.get("total"):
                    pct = int(100 * data["done"] / data["total"])
                    if bar is not None:
                        bar.update(pct - bar.pos)
                    elif not quiet:
                        shown = counted(data["done"], data["total"], data.get("unit"))
                        click.echo(f"  {shown} {data.get('message', '')}", err=True)
                if data.get("run_id") != run_id or data.get("status") == "running":
                    continue
            current = await client.call("job.get", {"run_id": run_id})
            if current["status"] in ("succeeded", "failed", "cancelled", "interrupted"):
                if bar is not None:
                    bar.update(100 - bar.pos)
                    bar.render_finish()
                return current
    finally:
        pending.cancel()
        events.close()


@jobs_group.command(name="get")
@click.argument("run_id", type=click.UUID)
@remote_options()
def jobs_get(state: CliState, run_id: uuid.UUID, socket_path, as_json) -> None:
    """One run with progress, result and error."""
    data = run_remote(state, socket_path, lambda c: c.call("job.get", {"run_id": str(run_id)}))
    emit(as_json, data, lambda r: [click.echo(f"{k:>16}: {v}") for k, v in r.items()])


@jobs_group.command(name="cancel")
@click.argument("run_id", type=click.UUID)
@remote_options(json=False)
def jobs_cancel(state: CliState, run_id: uuid.UUID, socket_path) -> None:
    """Ask a running job to stop at its next safe point."""
    run_remote(state, socket_path, lambda c: c.call("job.cancel", {"run_id": str(run_id)}))
    click.echo(f"cancel requested for {run_id}")
