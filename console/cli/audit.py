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
    from strongroom.core import audit
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
        result = audit.verify_checkpoint(engine, cp)
    else:
        result = audit.verify(engine, progress=progress)
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
                              "certificates": len(verdicts), "certificates_failed": len(bad)})
    data = {**result.__dict__, "certificates": {"checked": len(verdicts),
                                                "failed": [v.__dict__ for v in bad]}}

    def show(d: dict) -> None:
        click.echo(f"audit chain intact: {d['checked']} entries, head {d['head_hash'][:16]}" if d["ok"] else
                   f"audit chain BROKEN at entry {d['broken_id']}: {d['reason']} ({d['checked']} entries "
                   "before it verified)")
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
    """Sign the chain head (Ed25519) so a later rewrite of history is detectable."""
    from strongroom.core import audit
    from strongroom.core.db.engine import transaction
    from strongroom.core.fsutil import write_atomic

    with transaction(state.ctx.engine) as conn:
        cp = audit.checkpoint(conn, state.ctx.keyring)
        audit.append(conn, actor=local_actor(), action="VERIFY", table_name="audit_logs",
                     details={"event": "checkpoint", "head_id": cp["head_id"]})
    write_atomic(Path(out), (json.dumps(cp, indent=2) + "\n").encode(), mode=0o600)
    click.echo(f"checkpoint of entry {cp['head_id']} ({cp['head_hash'][:16]}) written to {out}")


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
