"""`strongroom compliance verify FILE`: check a signed compliance report offline.

Offline like `keys` and `db`: it opens the database named by the configuration to read
the audit signing key's public half (no KEK, no daemon), or takes `--public-key`.
"""
from __future__ import annotations

import base64
from pathlib import Path

import click

from strongroom.console.cli import CliState, emit, json_option, pass_state


@click.command(name="verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--public-key", default=None, metavar="BASE64",
              help="check against this Ed25519 public key instead of the database's audit signing key")
@json_option
@pass_state
def verify_cmd(state: CliState, file: Path, public_key: str | None, as_json) -> None:
    """Check a compliance report's signature and that no byte of it changed, offline:
    against the database's audit signing key (or --public-key)."""
    from strongroom.core.errors import IntegrityError, ValidationError
    from strongroom.core.reports.compliance_report import verify

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ValidationError(f"compliance verify: cannot read the file ({exc.strerror or 'unreadable'})") from None
    if public_key is not None:
        try:
            key = base64.b64decode(public_key, validate=True)
        except ValueError:
            raise ValidationError("compliance verify: --public-key is not base64") from None
        verdict = verify(data, public_key=key)
    else:
        from strongroom.core.db.engine import make_engine

        engine = make_engine(state.settings.database.url)
        try:
            verdict = verify(data, engine=engine)
        finally:
            engine.dispose()
    if as_json:
        emit(True, {"ok": verdict.ok, "reason": verdict.reason, "format": verdict.format,
                    "key_id": verdict.key_id, "signed_at": verdict.signed_at, "sha256": verdict.sha256}, None)
    if not verdict.ok:
        raise IntegrityError(f"compliance report does not verify: {verdict.reason}")
    if not as_json:
        click.echo(f"signature valid: {verdict.format} report signed {verdict.signed_at} by audit signing key "
                   f"{verdict.key_id}; content sha256 {verdict.sha256}")
