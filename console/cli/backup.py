"""`strongroom backup ...` and `strongroom restore`.

`backup run` and `backup verify` are jobs: they go through the daemon (one run per kind,
recorded, audited, notified). `backup list` and `restore` work on the repository
directly with the data directory's key, so a restore needs no running daemon: after a
disaster there may be nothing else.
"""
from __future__ import annotations

import asyncio
import sys
import uuid

import click

from strongroom.console.cli import CliState, emit, json_option, local_actor, pass_state, remote_options
from strongroom.console.cli.jobs import dry_run as dry_run_job
from strongroom.console.cli.jobs import start_job
from strongroom.console.cli.transport import run_remote
from strongroom.core.errors import ValidationError


@click.group(name="backup")
def group() -> None:
    """Snapshots: run, list, show, verify, drill, prune, forget, approve."""


configuration_option = click.option("--configuration", "-c", default="default", show_default=True,
                                    help="Backup configuration ([backup] is \"default\").")


def _with_configuration(params: dict, configuration: str) -> dict:
    return {**params, "configuration": configuration} if configuration != "default" else params


@group.command(name="run")
@click.option("--wait", is_flag=True, help="Show progress; exit non-zero if the backup fails.")
@configuration_option
@remote_options()
def run_cmd(state: CliState, wait: bool, configuration: str, socket_path, as_json: bool) -> None:
    """Take a snapshot now (through the daemon)."""
    start_job(state, socket_path, "backup", _with_configuration({}, configuration), wait=wait, as_json=as_json)


@group.command(name="verify")
@click.argument("snapshot_id", required=False, type=click.UUID)
@click.option("--read-data", is_flag=True, help="Fetch, decrypt and re-hash every chunk (slow, thorough).")
@click.option("--wait", is_flag=True)
@configuration_option
@remote_options()
def verify_cmd(state: CliState, snapshot_id, read_data: bool, wait: bool, configuration: str, socket_path,
               as_json: bool) -> None:
    """Prove snapshots are whole: presence (fast) or every byte (--read-data)."""
    params = _with_configuration({"read_data": "true" if read_data else ""}, configuration)
    if snapshot_id:
        params["snapshot_id"] = str(snapshot_id)
    start_job(state, socket_path, "verify", params, wait=wait, as_json=as_json)


@group.command(name="drill")
@click.argument("snapshot_id", required=False, type=click.UUID)
@click.option("--wait", is_flag=True)
@remote_options()
def drill_cmd(state: CliState, snapshot_id, wait: bool, socket_path, as_json: bool) -> None:
    """Restore a snapshot (default: newest) into a scratch database and prove it."""
    start_job(state, socket_path, "restore_drill", {"snapshot_id": str(snapshot_id)} if snapshot_id else {},
              wait=wait, as_json=as_json)


@group.command(name="prune")
@click.option("--dry-run", is_flag=True,
              help="Print the plan: each snapshot kept (and the rules keeping it) or forgotten, and why; "
                   "change nothing. Waits for the run.")
@click.option("--wait", is_flag=True)
@configuration_option
@remote_options()
def prune_cmd(state: CliState, dry_run: bool, wait: bool, configuration: str, socket_path, as_json: bool) -> None:
    """Forget snapshots the retention policy no longer keeps; compact chains; collect
    their chunks. In four-eyes mode this files a request for someone else to approve."""
    params = _with_configuration({}, configuration)
    if dry_run:
        dry_run_job(state, socket_path, "prune", params, as_json=as_json, human=_print_prune_plan)
        return
    start_job(state, socket_path, "prune", params, wait=wait, as_json=as_json)


def _print_prune_plan(p: dict) -> None:
    click.echo(f"dry run of prune run {p['run_id']} (configuration {p['configuration']}): nothing changed")
    actions = [s["action"] for s in p["snapshots"]]
    click.echo(f"would forget {actions.count('forget')}, keep {actions.count('keep')}, "
               f"replace {actions.count('replace')} by compacted copies, leave {actions.count('leave')} alone")
    for s in p["snapshots"]:
        taken = (s["started_at"] or "(not in database)")[:19]
        click.echo(f"{s['action']:<8} {s['snapshot_id']}  {taken:<19}  {s['kind']:<11} {', '.join(s['reasons'])}")
    for c in p["compactions"]:
        click.echo(f"compact  chain from {c['chain'][0]}: new full base from {c['new_base_from']} ({c['reason']})")
    for skipped in p["compaction_skipped"]:
        click.echo(f"skip     {skipped}")


@group.command(name="list")
@click.option("--target", help="Repository URL (default: the configuration's).")
@configuration_option
@json_option
@pass_state
def list_cmd(state: CliState, target: str | None, configuration: str, as_json: bool) -> None:
    """Snapshots in the repository, newest last, with how far each is proven."""
    from sqlalchemy import select

    from strongroom.core.backup.repository import open_repository
    from strongroom.core.db.models import Backup
    from strongroom.core.backup import snapshots
    from strongroom.core.storage import open_target

    ctx = state.ctx
    repo = open_repository(open_target(target or snapshots.target_url(ctx, configuration)), ctx.keyring)
    table = Backup.__table__
    with ctx.engine.connect() as conn:
        proofs = {r.id: r.proof for r in conn.execute(select(table.c.id, table.c.proof))}
    rows = []
    for snapshot_id in repo.list_snapshots():
        m = repo.read_manifest(snapshot_id)
        rows.append({"snapshot_id": str(snapshot_id), "kind": m.kind, "created_at": m.created_at.isoformat(),
                     "rows": m.totals.rows, "plain_bytes": m.totals.plain_bytes,
                     "added_bytes": m.totals.added_bytes, "files": m.files.count if m.files else 0,
                     "file_bytes": m.files.plain_bytes if m.files else 0,
                     "proof": proofs.get(snapshot_id, "unknown")})

    def human(items: list[dict]) -> None:
        if not items:
            click.echo(f"no snapshots in {repo.target.describe()}")
        for r in items:
            click.echo(f"{r['snapshot_id']}  {r['created_at'][:19]}  {r['kind']:<11} {r['rows']:>9} rows  "
                       f"{r['plain_bytes'] / 2**20:>8.1f} MiB  +{r['added_bytes'] / 2**20:.1f} MiB stored  "
                       f"{r['files']:>5} files  {r['proof']}")
    emit(as_json, rows, human)


@group.command(name="show")
@click.argument("snapshot_id", type=click.UUID)
@configuration_option
@json_option
@pass_state
def show_cmd(state: CliState, snapshot_id: uuid.UUID, configuration: str, as_json: bool) -> None:
    """One snapshot: its tables, rows and bytes, chain parent and proof (read from the
    repository with the data directory's key, like `list`)."""
    from strongroom.core.backup import snapshots

    ctx = state.ctx
    _, repo = snapshots.open_configured(ctx, {"configuration": configuration})
    emit(as_json, snapshots.describe_snapshot(ctx, repo, snapshot_id), _show_human)


def _show_human(d: dict) -> None:
    t = d["totals"]
    parent = f"on {d['parent_id']} (chain of {d['chain_length']})" if d["parent_id"] else "full base"
    click.echo(f"snapshot {d['snapshot_id']}  {d['kind']}, {parent}")
    click.echo(f"  taken     {d['created_at'][:19]}  schema {d['schema_revision']}  watermark {d['change_watermark']}")
    click.echo(f"  proof     {d['proof']}  ({d['status']})")
    click.echo(f"  totals    {t['tables']} tables, {t['rows']} rows, {t['tombstones']} tombstones, {t['chunks']} chunks, "
               f"{t['plain_bytes'] / 2**20:.1f} MiB plain, {t['stored_bytes'] / 2**20:.1f} MiB stored, "
               f"+{t['added_bytes'] / 2**20:.1f} MiB new")
    f = d["files"]
    click.echo(f"  files     {f['files']} client files, {f['objects']} objects, {f['plain_bytes'] / 2**20:.1f} MiB content, "
               f"{f['stored_bytes'] / 2**20:.1f} MiB stored, +{f['added_objects']} new objects "
               f"({f['added_bytes'] / 2**20:.1f} MiB)" + (f", {f['missing']} without content" if f["missing"] else ""))
    click.echo(f"  target    {d['target']}")
    for table in d["tables"]:
        if table["rows"] or table["mode"] == "full":
            click.echo(f"    {table['name']:<24} {table['mode']:<7} {table['rows']:>9} rows  "
                       f"{table['plain_bytes'] / 1e3:>9.1f} kB")


@group.command(name="forget")
@click.argument("snapshot_id", type=click.UUID)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait", is_flag=True, help="Follow the run; exit non-zero unless it succeeds.")
@configuration_option
@remote_options()
def forget_cmd(state: CliState, snapshot_id: uuid.UUID, yes: bool, wait: bool, configuration: str,
               socket_path, as_json: bool) -> None:
    """Forget one snapshot (never the newest verified one, nor a link another snapshot
    restores through). In four-eyes mode this files a request instead."""
    args = {"snapshot_id": str(snapshot_id), "configuration": configuration}
    check = run_remote(state, socket_path, lambda c: c.call("backup.forget", {**args, "dry_run": True}))
    if not yes:
        if not sys.stdin.isatty():
            raise ValidationError("forgetting a snapshot needs confirmation: run it in a terminal or add --yes")
        snap = check["snapshot"]
        what = "file a request to forget" if check["requires_approval"] else "forget"
        click.confirm(f"{what} snapshot {snapshot_id} ({snap['kind']}, {snap['created_at'][:19]}, "
                      f"{snap['totals']['rows']} rows, proof {snap['proof']})?", abort=True)
    if wait:
        start_job(state, socket_path, "prune", args, wait=True, as_json=as_json)
        return
    run = run_remote(state, socket_path, lambda c: c.call("backup.forget", args))
    emit(as_json, run, lambda r: click.echo(
        f"started prune run {r['id']}" + (" (four-eyes: it files a request for someone else to approve)"
                                          if r["requires_approval"] else "")))


@group.command(name="requests")
@click.option("--all", "include_closed", is_flag=True, help="Also approved, executed, expired and refused ones.")
@remote_options()
def requests_cmd(state: CliState, include_closed: bool, socket_path, as_json: bool) -> None:
    """Four-eyes requests to forget snapshots, newest first (pending ones by default)."""
    rows = run_remote(state, socket_path, lambda c: c.call("backup.request.list", {"include_closed": include_closed}))

    def human(items: list[dict]) -> None:
        if not items:
            click.echo("no pending requests" if not include_closed else "no requests")
        for r in items:
            click.echo(f"{r['id']}  {r['status']:<9} {r['kind']:<7} {r['configuration']:<12} "
                       f"forget {len(r['snapshot_ids'])}, replace {len(r['plan'].get('superseded', []))}  "
                       f"by {r['requested_by']}  expires {str(r['expires_at'])[:19]}"
                       + (f"  approved by {r['approved_by']}" if r.get("approved_by") else ""))
    emit(as_json, rows, human)


@group.command(name="approve")
@click.argument("request_id", type=click.UUID)
@click.option("--wait", is_flag=True, help="Follow the prune run; exit non-zero unless it succeeds.")
@remote_options()
def approve_cmd(state: CliState, request_id: uuid.UUID, wait: bool, socket_path, as_json: bool) -> None:
    """Approve someone else's request; the prune that carries it out starts at once.
    A request the scheduler filed is endorsed by the first approver and carried out
    when a second person approves it."""

    async def go(client):
        run = await client.call("backup.request.approve", {"request_id": str(request_id)})
        while wait and run["status"] in ("queued", "running"):
            await asyncio.sleep(0.3)
            run = await client.call("job.get", {"run_id": run["id"]})
        return run
    run = run_remote(state, socket_path, go)

    def human(r: dict) -> None:
        if ((r.get("result") or {}).get("pending_request") or {}).get("endorsed_by"):
            click.echo(f"endorsed request {request_id} (the scheduler filed it): a second person "
                       "must now approve it; nothing was deleted")
            return
        click.echo(f"approved request {request_id}: prune run {r['id']} {r['status']}"
                   + (f": {r['error']}" if r.get("error") else ""))
    emit(as_json, run, human)
    if wait and run["status"] != "succeeded":
        sys.exit(1)


@click.command(name="restore")
@click.argument("snapshot_id", type=click.UUID)
@click.option("--target", "dest", required=True,
              help="Database to restore into: sqlite:////path/new.db or postgresql+psycopg://... (must be empty).")
@click.option("--repository", help="Repository URL (default: the configured one).")
@click.option("--force", is_flag=True, help="Empty a non-empty target first. Destroys what is there.")
@click.option("--files-target", "files_dest",
              help="Files store for the snapshot's client files (directory or storage URL); default: files/ "
                   "beside a SQLite target, required for PostgreSQL when the snapshot holds files.")
@json_option
@pass_state
def restore_cmd(state: CliState, snapshot_id: uuid.UUID, dest: str, repository: str | None,
                force: bool, files_dest: str | None, as_json: bool) -> None:
    """Restore a snapshot into an empty database, proven against its manifest."""
    from strongroom.core import audit
    from strongroom.core.backup.repository import open_repository
    from strongroom.core.db.engine import transaction
    from strongroom.core.backup import snapshots
    from strongroom.core import restore as restoring
    from strongroom.core.storage import open_target

    ctx = state.ctx
    restoring.dest_engine(dest).dispose()      # a bad URL named as DEST, before anything is read
    if force and not as_json and sys.stdin.isatty():
        click.confirm(f"--force empties {dest.split('@')[-1]} before restoring. Continue?", abort=True)
    repo = open_repository(open_target(repository or snapshots.target_url(ctx)), ctx.keyring)
    from strongroom.core.backup import files as backup_files
    from strongroom.core.files.store import files_target_url
    files_target = backup_files.destination(dest, files_dest, repo.read_manifest(snapshot_id),
                                            files_target_url(ctx.settings))

    def progress(done, total, message):
        if not as_json and sys.stderr.isatty():
            click.echo(f"\r  {done}/{total} rows  {message:<40}", nl=False, err=True)

    outcome = "failure"
    try:
        result = restoring.restore(repo, snapshot_id, dest, force=force, progress=progress,
                                   files_target=files_target)
        outcome = "success"
    finally:
        with transaction(ctx.engine) as conn:
            audit.append(conn, actor=local_actor(), action="RESTORE", table_name="backups", record_id=snapshot_id,
                         outcome=outcome, details={"target_engine": dest.split(":", 1)[0], "force": force})
    emit(as_json, result.as_dict(), lambda r: click.echo(
        f"\nrestored snapshot {r['snapshot_id']} into {r['target_engine']}: {r['rows']} rows in "
        f"{r['tables']} tables, {r['seconds']}s; row counts, table hashes and the audit chain verified"
        + (f"; {r['files']['files']} client files ({r['files']['objects']} objects) restored, each proven "
           "by its keyed hash" if r["files"].get("files") else "")))
