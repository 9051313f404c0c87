"""`strongroom backup ...` and `strongroom restore`.

`backup run` and `backup verify` are jobs: they go through the daemon (one run per kind,
recorded, audited, notified). `backup list` and `restore` work on the repository
directly with the data directory's key, so a restore needs no running daemon: after a
disaster there may be nothing else.
"""
from __future__ import annotations

import sys
import uuid

import click
from sqlalchemy import select

from strongroom.console.cli import CliState, emit, json_option, local_actor, pass_state
from strongroom.console.cli.remote import socket_option, start_job
from strongroom.core import audit
from strongroom.core.backup.repository import open_repository
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Backup
from strongroom.core.jobs import backup as backup_job
from strongroom.core.jobs import restore as restore_job
from strongroom.core.storage import open_target


@click.group(name="backup")
def group() -> None:
    """Snapshots: run, list, verify, drill, prune."""


@group.command(name="run")
@click.option("--wait", is_flag=True, help="Show progress; exit non-zero if the backup fails.")
@socket_option
@json_option
@pass_state
def run_cmd(state: CliState, wait: bool, socket_path, as_json: bool) -> None:
    """Take a snapshot now (through the daemon)."""
    start_job(state, socket_path, "backup", {}, wait=wait, as_json=as_json)


@group.command(name="verify")
@click.argument("snapshot_id", required=False, type=click.UUID)
@click.option("--read-data", is_flag=True, help="Fetch, decrypt and re-hash every chunk (slow, thorough).")
@click.option("--wait", is_flag=True)
@socket_option
@json_option
@pass_state
def verify_cmd(state: CliState, snapshot_id, read_data: bool, wait: bool, socket_path, as_json: bool) -> None:
    """Prove snapshots are whole: presence (fast) or every byte (--read-data)."""
    params = {"read_data": "true" if read_data else ""}
    if snapshot_id:
        params["snapshot_id"] = str(snapshot_id)
    start_job(state, socket_path, "verify", params, wait=wait, as_json=as_json)


@group.command(name="drill")
@click.argument("snapshot_id", required=False, type=click.UUID)
@click.option("--wait", is_flag=True)
@socket_option
@json_option
@pass_state
def drill_cmd(state: CliState, snapshot_id, wait: bool, socket_path, as_json: bool) -> None:
    """Restore a snapshot (default: newest) into a scratch database and prove it."""
    start_job(state, socket_path, "restore_drill", {"snapshot_id": str(snapshot_id)} if snapshot_id else {},
              wait=wait, as_json=as_json)


@group.command(name="prune")
@click.option("--dry-run", is_flag=True, help="Say what would be forgotten; change nothing.")
@click.option("--wait", is_flag=True)
@socket_option
@json_option
@pass_state
def prune_cmd(state: CliState, dry_run: bool, wait: bool, socket_path, as_json: bool) -> None:
    """Forget snapshots the retention policy no longer keeps; collect their chunks."""
    start_job(state, socket_path, "prune", {"dry_run": "true"} if dry_run else {}, wait=wait, as_json=as_json)


@group.command(name="list")
@click.option("--target", help="Repository URL (default: the configured one).")
@json_option
@pass_state
def list_cmd(state: CliState, target: str | None, as_json: bool) -> None:
    """Snapshots in the repository, newest last, with how far each is proven."""
    ctx = state.ctx
    repo = open_repository(open_target(target or backup_job.target_url(ctx)), ctx.keyring)
    table = Backup.__table__
    with ctx.engine.connect() as conn:
        proofs = {r.id: r.proof for r in conn.execute(select(table.c.id, table.c.proof))}
    rows = []
    for snapshot_id in repo.list_snapshots():
        m = repo.read_manifest(snapshot_id)
        rows.append({"snapshot_id": str(snapshot_id), "kind": m.kind, "created_at": m.created_at.isoformat(),
                     "rows": m.totals.rows, "plain_bytes": m.totals.plain_bytes,
                     "added_bytes": m.totals.added_bytes, "proof": proofs.get(snapshot_id, "unknown")})

    def human(items: list[dict]) -> None:
        if not items:
            click.echo(f"no snapshots in {repo.target.describe()}")
        for r in items:
            click.echo(f"{r['snapshot_id']}  {r['created_at'][:19]}  {r['kind']:<11} {r['rows']:>9} rows  "
                       f"{r['plain_bytes'] / 1e6:>8.1f} MB  +{r['added_bytes'] / 1e6:.1f} MB stored  {r['proof']}")
    emit(as_json, rows, human)


@click.command(name="restore")
@click.argument("snapshot_id", type=click.UUID)
@click.option("--target", "dest", required=True,
              help="Database to restore into: sqlite:////path/new.db or postgresql+psycopg://... (must be empty).")
@click.option("--repository", help="Repository URL (default: the configured one).")
@click.option("--force", is_flag=True, help="Empty a non-empty target first. Destroys what is there.")
@json_option
@pass_state
def restore_cmd(state: CliState, snapshot_id: uuid.UUID, dest: str, repository: str | None,
                force: bool, as_json: bool) -> None:
    """Restore a snapshot into an empty database, proven against its manifest."""
    ctx = state.ctx
    if force and not as_json and sys.stdin.isatty():
        click.confirm(f"--force empties {dest.split('@')[-1]} before restoring. Continue?", abort=True)
    repo = open_repository(open_target(repository or backup_job.target_url(ctx)), ctx.keyring)

    def progress(done, total, message):
        if not as_json and sys.stderr.isatty():
            click.echo(f"\r  {done}/{total} rows  {message:<40}", nl=False, err=True)

    outcome = "failure"
    try:
        result = restore_job.restore(repo, snapshot_id, dest, force=force, progress=progress)
        outcome = "success"
    finally:
        with transaction(ctx.engine) as conn:
            audit.append(conn, actor=local_actor(), action="RESTORE", table_name="backups", record_id=snapshot_id,
                         outcome=outcome, details={"target_engine": dest.split(":", 1)[0], "force": force})
    emit(as_json, result.as_dict(), lambda r: click.echo(
        f"\nrestored snapshot {r['snapshot_id']} into {r['target_engine']}: {r['rows']} rows in "
        f"{r['tables']} tables, {r['seconds']}s; row counts, table hashes and the audit chain verified"))
