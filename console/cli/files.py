"""`strongroom files ...`: a client's files, through the daemon.

`files add CLIENT_ID PATH [--description TEXT] [--type TYPE]` sends the file's content
to the daemon in bounded pieces over the control socket, each a raw binary frame after
the call's JSON frame (a framed transfer: no base64) (the daemon never opens a path
of the caller's: its hardened unit cannot see home directories, and a console may be on
another machine); `files list CLIENT_ID`; `files get FILE_ID --out PATH [--force]`
writes to a temporary file beside PATH, fsyncs and renames it into place only after
the daemon has handed over the last chunk, which it sends only once the whole file has
authenticated and matched its recorded hash (so a tampered or truncated file never
lands at PATH); `files remove FILE_ID`; `files scan-status` (the daemon health's
`files` block: files pending a malware scan, and whether clamd answers). Names are PHI:
the daemon shows them only to a caller with phi:read, and errors never echo them.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import click

from strongroom.console.cli import CliState, emit, remote_options
from strongroom.console.cli.transport import run_remote
from strongroom.console.helpers.transfers import download, guess_type, upload
from strongroom.core.errors import ValidationError

if TYPE_CHECKING:  # ZeroMQ loads when a command runs, not for its help
    from strongroom.console.client import Client


@click.group(name="files")
def group() -> None:
    """Client files: add, list, get, remove (content encrypted with the client's key)."""


@group.command(name="add")
@click.argument("client_id", type=click.UUID)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--description", help="A note kept (encrypted) with the file.")
@click.option("--type", "content_type", help="Content type (default: guessed from the name).")
@remote_options()
def add_cmd(state: CliState, client_id: uuid.UUID, path: Path, description: str | None,
            content_type: str | None, socket_path, as_json: bool) -> None:
    """Add the file at PATH to a client (streamed to the daemon in chunks)."""
    kind = content_type or guess_type(path)

    async def go(client: Client) -> dict:
        return await upload(client, str(client_id), path, content_type=kind, description=description)

    added = run_remote(state, socket_path, go)

    def human(f: dict) -> None:
        click.echo(f"added file {f['id']} ({f['size_bytes']} bytes, {f['content_type']}), "
                   f"virus scan: {f['virus_scan_status']}")
        if f.get("scan_note"):
            click.echo(f"  not scanned yet: {f['scan_note']}")
    emit(as_json, added, human)


@group.command(name="list")
@click.argument("client_id", type=click.UUID)
@remote_options()
def list_cmd(state: CliState, client_id: uuid.UUID, socket_path, as_json: bool) -> None:
    """A client's files, newest first (names only with phi:read)."""
    rows = run_remote(state, socket_path, lambda c: c.call("file.list", {"client_id": str(client_id)}))

    def human(items: list[dict]) -> None:
        if not items:
            click.echo("no files")
        for f in items:
            line = (f"{f['id']}  {str(f['created_at'])[:19]}  {f['size_bytes']:>10}  {f['content_type']:<24}  "
                    f"{f['virus_scan_status']:<8}  {f['name']}")
            click.echo(line + (f"  ({f['description']})" if f.get("description") else ""))
    emit(as_json, rows, human)


@group.command(name="get")
@click.argument("file_id", type=click.UUID)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the file (not overwritten unless --force).")
@click.option("--force", is_flag=True, help="Replace an existing file at --out.")
@remote_options()
def get_cmd(state: CliState, file_id: uuid.UUID, out: Path, force: bool, socket_path, as_json: bool) -> None:
    """Save a file's content to --out (written whole, or not at all)."""
    out = out.absolute()
    if out.exists() and not force:
        raise ValidationError("--out: a file is already there; add --force to replace it")
    if not out.parent.is_dir():
        raise ValidationError("--out: its folder does not exist")

    async def go(client: Client) -> dict:
        return await download(client, str(file_id), out)

    got = run_remote(state, socket_path, go)
    emit(as_json, got, lambda g: click.echo(f"saved file {g['file_id']} ({g['size']} bytes) to {g['out']}"))


@group.command(name="remove")
@click.argument("file_id", type=click.UUID)
@remote_options()
def remove_cmd(state: CliState, file_id: uuid.UUID, socket_path, as_json: bool) -> None:
    """Remove a file: its record tombstoned and its stored content deleted."""
    done = run_remote(state, socket_path, lambda c: c.call("file.remove", {"file_id": str(file_id)}))
    emit(as_json, done, lambda r: click.echo(f"removed file {r['file_id']} ({r['objects_deleted']} objects deleted)"))


@group.command(name="scan-status")
@remote_options()
def scan_status_cmd(state: CliState, socket_path, as_json: bool) -> None:
    """Malware scanning: files pending a scan, clean and infected; whether clamd answers."""
    health = run_remote(state, socket_path, lambda c: c.call("health"))
    files = health.get("files")
    if files is None:
        raise ValidationError("the daemon has not taken its first health snapshot yet; try again in a few seconds")

    def human(f: dict) -> None:
        if f["scanner"] == "off":
            click.echo('scanner: off ([files] scanner = "off"): files are not scanned')
        else:
            answer = f"answers ({f['version']})" if f["answers"] else "DOES NOT ANSWER"
            click.echo(f"scanner: clamd at {f['address']}: {answer}")
        click.echo(f"files: {f['pending']} pending a scan, {f['clean']} clean, {f['infected']} infected")
    emit(as_json, files, human)
