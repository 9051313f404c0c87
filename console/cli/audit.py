"""`strongroom audit ...`: verify and read the hash-chained audit log."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from strongroom.console.cli import CliState, emit, json_option, local_actor, pass_state
from strongroom.console.cli.lazy import LazyChoice
from strongroom.core.errors import IntegrityError


def _actions() -> list[str]:
    from strongroom.core import audit

    return sorted(audit.ACTIONS)


@click.group(name="audit")
def group() -> None:
    """The audit trail."""


@group.command(name="verify")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False, exists=True),
              help="Also prove the chain still holds this signed checkpoint.")
@click.option("--certificate", "certificate_file", type=click.Path(dir_okay=False, exists=True),
              help="Also check this erasure certificate (JSON) against the log.")
@json_option
@pass_state
def verify_cmd(state: CliState, checkpoint_file: str | None, certificate_file: str | None,
               as_json: bool) -> None:
    """Re-hash the whole chain; report the first broken row (exit 6 if any). Every
    erasure certificate the log holds is checked too (signature, and the statement
    logged after its erasure), and a handed-over one with --certificate."""
    from strongroom.core import audit, checkpoints
    from strongroom.core.db.engine import transaction
    from strongroom.core.retention import certificate

    engine = state.ctx.engine

    def progress(done: int, total: int, _msg: str) -> None:
        if not as_json and sys.stderr.isatty():
            click.echo(f"\r  {done}/{total}", nl=False, err=True)

    if checkpoint_file:
        try:
            cp = json.loads(Path(checkpoint_file).read_text())
        except (ValueError, UnicodeDecodeError):
            raise IntegrityError(f"{checkpoint_file}: not a checkpoint (invalid JSON)") from None
        if not isinstance(cp, dict):
            raise IntegrityError(f"{checkpoint_file}: not a checkpoint (not a JSON object)")
        result = audit.verify_checkpoint(engine, cp, keyring=state.ctx.keyring)
    else:
        result, cp = checkpoints.verify_against_newest(state.ctx, progress=progress)
    verdicts = certificate.verify_all(engine)
    if certificate_file:
        handed = certificate.parse(Path(certificate_file).read_bytes())
        with transaction(engine, read_only=True) as conn:
            verdicts.append(certificate.verify(conn, handed))
    bad = [v for v in verdicts if not v.ok]
    with transaction(engine) as conn:
        audit.append(conn, actor=local_actor(), action="VERIFY",
                     table_name="audit_logs", outcome="success" if result.ok and not bad else "failure",
                     details={"checked": result.checked, "broken_id": result.broken_id,
                              "rows_missing_after": result.rows_missing_after,
                              "checkpoint_head_id": cp["head_id"] if cp else None,
                              "certificates": len(verdicts), "certificates_failed": len(bad)})
    data = {**result.__dict__, "checkpoint": checkpoints.summary(cp),
            "certificates": {"checked": len(verdicts), "failed": [v.__dict__ for v in bad]}}

    def show(d: dict) -> None:
        click.echo(f"audit chain intact: {d['checked']} entries, head {d['head_hash'][:16]}" if d["ok"] else
                   f"audit chain BROKEN at entry {d['broken_id']}: {d['reason']} ({d['checked']} entries "
                   "before it verified)")
        if d["sealed"]:
            click.echo("seals: every entry sealed" + (f" after {d['unsealed_legacy']} from before sealing began"
                                                      if d["unsealed_legacy"] else ""))
        if d["database_written_count"]:
            click.echo(f"  {d['database_written_count']} entries written by the database itself for changes "
                       f"made outside Strongroom (unsealed), e.g. {', '.join(map(str, d['database_written'][:10]))}")
        if d["checkpoint"]:
            click.echo(f"newest checkpoint: entry {d['checkpoint']['head_id']}, signed {d['checkpoint']['signed_at']}"
                       + (" (still in the log)" if d["ok"] else ""))
        else:
            click.echo("no checkpoint kept outside the database yet (one is written at each backup, "
                       "hourly while the log grows, and at daemon shutdown)")
        if verdicts:
            click.echo(f"erasure certificates: {len(verdicts) - len(bad)} of {len(verdicts)} verified")
        for v in bad:
            click.echo(f"  certificate of request {v.request_id} FAILED: {v.reason}")
    emit(as_json, data, show)
    if not result.ok:
        raise IntegrityError(f"audit chain broken at entry {result.broken_id}")
    if bad:
        raise IntegrityError(f"{len(bad)} erasure certificate(s) failed verification")


@group.command(name="checkpoint")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="Where to write the signed checkpoint (keep a copy off this machine).")
@pass_state
def checkpoint_cmd(state: CliState, out: str) -> None:
    """Sign the chain head (Ed25519), its own entry included, so a later rewrite or cut
    of history is detectable; also kept in every backup repository and [audit]
    checkpoint_file."""
    from strongroom.core import checkpoints
    from strongroom.core.fsutil import write_atomic

    cp = checkpoints.take(state.ctx, actor=local_actor(), reason="manual")
    write_atomic(Path(out), (json.dumps(cp, indent=2) + "\n").encode(), mode=0o600)
    click.echo(f"checkpoint of entry {cp['head_id']} ({cp['head_hash'][:16]}) written to {out}"
               + (f" and {len(cp['places'])} other place(s)" if cp["places"] else ""))


@group.command(name="tail")
@click.option("-n", "--lines", default=20, show_default=True, type=click.IntRange(1, 10000))
@click.option("--actor")
@click.option("--action", type=LazyChoice(_actions, case_sensitive=False))
@click.option("--table", "table_name")
@click.option("--before", "before_id", type=int, help="Page back: entries older than this id.")
@json_option
@pass_state
def tail_cmd(state: CliState, lines: int, actor: str | None, action: str | None,
             table_name: str | None, before_id: int | None, as_json: bool) -> None:
    """Show the newest audit entries (oldest of them first)."""
    from strongroom.core import audit

    with state.ctx.engine.connect() as conn:
        entries = audit.tail(conn, limit=lines, before_id=before_id, actor=actor,
                             action=action.upper() if action else None, table_name=table_name)
    entries.reverse()
    data = [e.__dict__ for e in entries]

    def human(rows: list[dict]) -> None:
        for r in rows:
            where = f"{r['table_name']}/{r['record_id']}" if r["record_id"] else (r["table_name"] or "-")
            click.echo(f"{r['id']:>8}  {r['occurred_at']:%Y-%m-%d %H:%M:%S}  {r['actor']:<18} "
                       f"{r['action']:<12} {r['outcome']:<8} {where}")

    emit(as_json, data, human)
