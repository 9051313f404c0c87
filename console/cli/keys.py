"""`strongroom keys ...`: key status, rotation, the recovery kit and its drill.

Offline admin commands on the data directory. `status` and `test-kit` open the database
without loading the KEK: status needs no key, and test-kit exists for the day the key
file is gone. Passphrases come from --passphrase-file, $STRONGROOM_KIT_PASSPHRASE (for
scripts) or a hidden prompt, never from a command-line argument (visible in `ps`).
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

from strongroom.console.cli import CliState, emit, json_option, local_actor, pass_state
from strongroom.core.errors import ConflictError, KeyUnavailableError, ValidationError

if TYPE_CHECKING:  # the console never needs SQLAlchemy at run time
    from sqlalchemy import Engine

PASSPHRASE_ENV = "STRONGROOM_KIT_PASSPHRASE"

passphrase_file_option = click.option(
    "--passphrase-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help=f"Read the kit passphrase from this file (else ${PASSPHRASE_ENV}, else a prompt).")


@click.group(name="keys")
def group() -> None:
    """Encryption keys: status, rotation, recovery kit."""


@contextlib.contextmanager
def _engine(state: CliState) -> Iterator["Engine"]:
    """The database alone, without loading the KEK (which may be the thing that is lost)."""
    from strongroom.core.db.engine import make_engine

    engine = make_engine(state.settings.database.url)
    try:
        yield engine
    finally:
        engine.dispose()


def _passphrase(path: Path | None, *, confirm: bool) -> str:
    if path is not None:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    return click.prompt("Kit passphrase", hide_input=True, confirmation_prompt=confirm,
                        err=True)


def _read_kit_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{path}: not a text file (a recovery kit is plain text)") from None


# -- status ------------------------------------------------------------------------------

@group.command("status")
@json_option
@pass_state
def status(state: CliState, as_json: bool) -> None:
    """Keys by purpose and state, rows still on each key version, KEKs in use."""
    from strongroom.core.crypto import key_status
    from strongroom.core.db.engine import transaction

    with _engine(state) as engine, transaction(engine, read_only=True) as conn:
        data = key_status.key_status(conn)
    emit(as_json, data, _print_status)


def _print_status(data: dict) -> None:
    click.echo("KEKs in use: " + (", ".join(f"{k} ({n} keys)" for k, n in data["kek_ids"].items())
                                  or "none"))
    click.echo("\nData keys:")
    for row in data["keys"]:
        click.echo(f"  {row['purpose']:<14} {row['state']:<10} {row['keys']:>8}")
    click.echo("\nRows by key version:")
    for row in data["rows"]:
        click.echo(f"  {row['table']:<18} v{row['version']:<4} {row['state']:<10} {row['rows']:>8}")
    click.echo(f"\nRows still on retired keys: {data['rows_on_retired_keys']}")
    rot = data["dek_rotation"]
    if rot:
        click.echo(f"DEK rotation started {rot['started_at']} is unfinished: "
                   f"{rot['remaining_clients']} clients to go (run `strongroom keys rotate-deks`)")
    if data["stray_clients"]:
        click.echo(f"{data['stray_clients']} clients have rows on an older key "
                   "(run `strongroom keys rotate-deks`)")


# -- rotation ----------------------------------------------------------------------------

@group.command("rotate-kek")
@click.option("--to", "to", type=click.Choice(["file", "kms"]), default=None,
              help="Where the new KEK lives: a plain key file, or AWS KMS (default: where it is now).")
@click.option("--kms-key-id", default=None, metavar="ARN|ID|alias/NAME",
              help="The KMS key to move the KEK under (with --to kms).")
@json_option
@pass_state
def rotate_kek(state: CliState, to: str | None, kms_key_id: str | None, as_json: bool) -> None:
    """Rewrap every data key under a new KEK (resumes an interrupted rotation).

    With --to kms the new KEK is a wrapping key from AWS KMS (GenerateDataKey under
    --kms-key-id) and keys.kek_file then holds only its KMS-encrypted envelope; --to
    file moves it back to a plain key file. Then set keys.kms_key_id to the new KMS key
    (or remove it after --to file). Restart the daemon afterwards, and print a new
    recovery kit: the old kit opens only the old KEK, which is kept beside the key file
    for restoring old backups.
    """
    from pydantic import ValidationError as PydanticError

    from strongroom.core.config import KeySettings
    from strongroom.core.crypto import kek_rotation
    from strongroom.core.errors import ValidationError
    from strongroom.core.jobs.key_rotation import repository_holders

    if kms_key_id is not None:
        if to != "kms":
            raise ValidationError("--kms-key-id: only with --to kms")
        try:
            KeySettings(kms_key_id=kms_key_id)
        except PydanticError:
            raise ValidationError("--kms-key-id: not a KMS key ARN, key id or alias/NAME") from None
    elif to == "kms":
        raise ValidationError("--kms-key-id: required with --to kms")
    result = kek_rotation.rotate_kek(state.ctx, actor=local_actor(),
                                     holders=repository_holders(state.ctx), to=to, kms_key_id=kms_key_id)
    kms_key = state.ctx.keyring.primary.kms_key
    configured = state.ctx.settings.keys.kms_key_id

    def human(r: dict) -> None:
        verb = "Finished interrupted rotation" if r["resumed"] else "Rotated"
        click.echo(f"{verb}: KEK {', '.join(r['old_kek_ids'])} -> {r['new_kek_id']}; "
                   f"{r['rewrapped']} data keys rewrapped in {r['seconds']}s.")
        for where in r["holders_rewrapped"]:
            click.echo(f"Backup repository {where} rewrapped under the new KEK.")
        click.echo(f"Old key kept as {', '.join(r['retired_files'])} (needed to restore "
                   "older backups; move it to offline storage).")
        if kms_key:
            click.echo(f"The KEK is now held by AWS KMS key {kms_key}; the key file holds only its "
                       "KMS-encrypted envelope.")
            if configured != kms_key:
                click.echo(f'Set kms_key_id = "{kms_key}" in the [keys] section of your configuration.')
        elif configured:
            click.echo("The KEK is now a plain key file: remove kms_key_id from the [keys] section of "
                       "your configuration, or the next start refuses the key file.")
        click.echo("Now restart strongroomd and run `strongroom keys export-kit` for a new kit.")

    emit(as_json, asdict(result), human)


def _progress_printer() -> tuple[Callable[[int, int, str], None], Callable[[], None]]:
    """A progress(done, total, message) callback: a bar on a terminal, lines otherwise."""
    bar = None
    last = [0.0]

    def progress(done: int, total: int, message: str) -> None:
        nonlocal bar
        if sys.stderr.isatty():
            if bar is None:
                bar = click.progressbar(length=total, label=message, file=sys.stderr)
                bar.__enter__()
            bar.update(1)
            return
        now = time.monotonic()
        if done == total or now - last[0] >= 1.0:
            last[0] = now
            click.echo(f"{message}: {done}/{total} clients", err=True)

    def close() -> None:
        if bar is not None:
            bar.__exit__(None, None, None)

    return progress, close


@group.command("rotate-deks")
@click.option("--client", "clients", multiple=True, type=click.UUID,
              help="Only this client id (repeatable). Default: every client.")
@json_option
@pass_state
def rotate_deks(state: CliState, clients: tuple[uuid.UUID, ...], as_json: bool) -> None:
    """Re-encrypt client records under new data keys; resumable, re-run to continue."""
    from strongroom.core.crypto import dek_rotation

    progress, close = _progress_printer()
    try:
        result = dek_rotation.rotate_deks(state.ctx, client_ids=list(clients) or None,
                                          actor=local_actor(), progress=progress)
    finally:
        close()

    def human(r: dict) -> None:
        verb = "Continued" if r["resumed"] else "Started"
        rows = sum(r["rows_reencrypted"].values())
        click.echo(f"{verb} DEK rotation {r['generation']}: {r['clients_rotated']} clients, "
                   f"{rows} rows re-encrypted in {r['seconds']}s.")
        if r["completed"]:
            click.echo("Rotation complete. Old keys are retired; once backups no longer need "
                       "them, `strongroom keys destroy-unused` shreds them.")
        else:
            click.echo(f"{r['remaining']} clients remain: run the command again to continue.")

    emit(as_json, asdict(result), human)


@group.command("rotate-system-key")
@json_option
@pass_state
def rotate_system_key(state: CliState, as_json: bool) -> None:
    """New system data key; re-encrypt the secrets it seals (TOTP seeds)."""
    from strongroom.core.crypto import system_key_rotation

    result = system_key_rotation.rotate_system_key(state.ctx, actor=local_actor())
    emit(as_json, asdict(result), lambda r: click.echo(
        f"System key v{r['version']} ({r['new_key_id']}); "
        f"{sum(r['rows_reencrypted'].values())} rows re-encrypted."))


@group.command("destroy-unused")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_state
def destroy_unused(state: CliState, yes: bool, as_json: bool) -> None:
    """Crypto-shred retired data keys that no row uses any more (irreversible)."""
    from strongroom.core.crypto import key_status

    if not yes:
        click.confirm("Destroy every retired data key no row uses? Backups taken before the "
                      "rotation keep their own copies.", abort=True, err=True)
    result = key_status.destroy_retired_unused(state.ctx, actor=local_actor())
    emit(as_json, asdict(result),
         lambda r: click.echo(f"Destroyed {len(r['key_ids'])} retired data keys."))


# -- recovery kit ------------------------------------------------------------------------

@group.command("export-kit")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the printable kit (plain text, mode 0600).")
@passphrase_file_option
@pass_state
def export_kit(state: CliState, out: Path, passphrase_file: Path | None) -> None:
    """Write the key recovery kit: the KEK sealed with a passphrase, to print and store."""
    from strongroom.core import audit
    from strongroom.core.crypto import kit as kits
    from strongroom.core.db.engine import transaction
    from strongroom.core.fsutil import write_atomic

    if out.exists():
        raise ConflictError(f"{out}: refusing to overwrite an existing file")
    ctx = state.ctx
    kek = ctx.keyring.primary
    # A KMS-held KEK cannot be printed: its page carries the KMS envelope and says what
    # that can and cannot recover; it needs no passphrase (KMS seals the envelope).
    passphrase = None if kek.envelope is not None else \
        kits.check_passphrase(_passphrase(passphrase_file, confirm=True))
    with transaction(ctx.engine) as conn:
        check = kits.check_kek(conn, kek)
        if not check.ok:
            raise KeyUnavailableError(
                f"not exporting a kit that would not open this database: {check.message}; "
                "finish the KEK rotation first (`strongroom keys rotate-kek`)")
        if passphrase is None:
            page = kits.export_kms_kit(kek, practice_name=state.settings.practice_name)
        else:
            page = kits.export_kit(kek, passphrase, practice_name=state.settings.practice_name)
        audit.append(conn, actor=local_actor(), action="KEY_EXPORT", table_name="data_keys",
                     details={"what": "recovery_kit", "kek_id": kek.kek_id, "file": str(out),
                              **({"kms_key": kek.kms_key} if kek.kms_key else {})})
        # Written inside the transaction: if the write fails, the export is not audited;
        # the audit entry can never be missing for a kit that exists.
        write_atomic(out, page.encode("utf-8"), mode=0o600)
    click.echo(f"Recovery kit for KEK {kek.kek_id} written to {out}.")
    if kek.envelope is not None:
        click.echo(f"The KEK is held by AWS KMS key {kek.kms_key}: the kit holds its KMS envelope, not "
                   "the key, and cannot recover anything if that KMS key or access to it is lost. "
                   "Read the kit, print it and delete the file.")
        return
    click.echo("Print it, store it apart from the passphrase, delete the file, and check the "
               "printout with `strongroom keys test-kit`.")


@group.command("test-kit")
@click.option("--kit", "kit_file", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path))
@passphrase_file_option
@json_option
@pass_state
def test_kit(state: CliState, kit_file: Path, passphrase_file: Path | None, as_json: bool) -> None:
    """Prove a kit opens this database's keys; works with the KEK file missing."""
    from strongroom.core.crypto import kit as kits

    text = _read_kit_file(kit_file)
    passphrase = _passphrase(passphrase_file, confirm=False)
    with _engine(state) as engine:
        result = kits.test_kit(engine, text, passphrase, actor=local_actor())
    if not result.ok:
        raise KeyUnavailableError(f"recovery kit test failed: {result.message}")
    emit(as_json, asdict(result), lambda r: click.echo(
        f"OK: {r['message']} (unwrapped one {', '.join(sorted(r['unwrapped'])) or 'no'} key"
        f"{'s' if len(r['unwrapped']) != 1 else ''}; {r['keys_covered']}/{r['keys_total']} "
        "keys covered)."))


@group.command("recover")
@click.option("--kit", "kit_file", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The new key file to write (mode 0600; never overwritten).")
@passphrase_file_option
def recover(kit_file: Path, out: Path, passphrase_file: Path | None) -> None:
    """Recreate the KEK file from a recovery kit (needs no configuration)."""
    from strongroom.core.crypto import kit as kits

    text = _read_kit_file(kit_file)
    kek = kits.recover(text, _passphrase(passphrase_file, confirm=False), out)
    click.echo(f"Recovered KEK {kek.kek_id} into {out}. Set keys.kek_file to it, then run "
               "`strongroom keys test-kit` to confirm it opens the database.")


@group.command("client-key")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=".", show_default=True,
              help="Directory for NAME.key_secret (0600) and NAME.key (public).")
@click.option("--name", default="client", show_default=True,
              help="File name stem: letters, digits, - and _ (name the device, e.g. laptop-anna).")
@pass_state
def client_key(state: CliState, out: Path, name: str) -> None:
    """A CURVE key pair for reaching a daemon from another machine (--connect).

    Keep NAME.key_secret on this machine; copy NAME.key into the daemon's
    daemon.curve_allowed_clients_dir. The public key is printed. The daemon's own pair
    (daemon.curve_secret_key_file) can be made the same way, with --name server."""
    from strongroom.console.cli.transport import write_client_key

    secret_path, public_path, public = write_client_key(out, name)
    click.echo(public)
    click.echo(f"secret key: {secret_path} (keep it here, mode 0600); public key file: {public_path} "
               "(copy it into the daemon's curve_allowed_clients_dir)", err=True)
