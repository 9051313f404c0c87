"""The `restore` job: a thin wrapper over core.restore, which holds the library (target
checks, loaders, plan, proofs, the two strategies). The job parses its params, opens the
configured repository under a shared lock, restores, and audits the attempt either way."""
from __future__ import annotations

from typing import Any


from strongroom.core import audit
from strongroom.core.backup import files as backup_files
from strongroom.core.db.engine import transaction
from strongroom.core.restore import restore
from strongroom.core.restore.target import dest_engine


def run(ctx, params: dict, progress) -> dict[str, Any]:
    """The `restore` job: snapshot `snapshot_id` of configuration `configuration` into the
    database at `dest`, which must be empty (`force` replaces it). Never into the
    daemon's own database: restoring over the live data while it runs is not a restore."""
    from strongroom.core.db.engine import normalise_url
    from strongroom.core.backup.snapshots import open_configured
    from strongroom.core.files.store import files_target_url
    from strongroom.core.jobs.kinds import parse

    asked = parse("restore", params)
    dest_engine(asked.dest).dispose()             # a bad URL named as `dest`, not database.url
    snapshot_id, dest, force = asked.snapshot_id, normalise_url(asked.dest), asked.force
    _, repo = open_configured(ctx, params)
    files_target = backup_files.destination(dest, asked.files_dest, repo.read_manifest(snapshot_id),
                                            files_target_url(ctx.settings))
    lock = repo.acquire_lock("shared", "restore")
    outcome, result = "failure", None
    try:
        result = restore(repo, snapshot_id, dest, force=force, progress=progress, live=ctx.engine,
                         files_target=files_target)
        outcome = "success"
    finally:
        lock.release()
        with transaction(ctx.engine) as conn:
            audit.append(conn, actor=params.get("actor", "system"), action="RESTORE", table_name="backups",
                         record_id=snapshot_id, outcome=outcome,
                         details={"target_engine": dest.split(":", 1)[0].split("+", 1)[0], "force": force,
                                  **({"rows": result.rows, "seconds": result.seconds, "files": result.files}
                                     if result else {})})
    return result.as_dict()
