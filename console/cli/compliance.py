"""The compliance score and checklist, and the signed report an auditor keeps."""
from __future__ import annotations

import base64
from pathlib import Path


import click

from strongroom.console.cli import CliState, emit, remote_options
from strongroom.console.cli.transport import run_remote
from strongroom.core.errors import StrongroomError


@click.group(name="compliance", invoke_without_command=True)
@remote_options()
@click.pass_context
def compliance_cmd(click_ctx: click.Context, state: CliState, socket_path, as_json) -> None:
    """Compliance score (source weights) and the HIPAA checklist with evidence.

    `report` writes the signed report an auditor keeps; `verify` checks one."""
    if click_ctx.invoked_subcommand is not None:
        return
    data = run_remote(state, socket_path, lambda c: c.call("compliance.report.get"))

    def human(d: dict) -> None:
        click.echo(f"compliance score {d['score']}/100")
        for name, area in d["areas"].items():
            if area.get("status") == "not configured":
                click.echo(f"  {name:<11} not configured: not evidenced, forgoes {area['weight']} points")
                continue
            lost = area.get("failed_or_missed_jobs")
            jobs = f", {lost} failed or missed scheduled runs" if lost else ""
            click.echo(f"  {name:<11} {area['points']:>5}/{area['weight']:<3} ({area['passed']}/{area['checks']} checks{jobs})")
        for c in d["checks"]:
            mark = "ok  " if c["passed"] else "FAIL"
            click.echo(f"  {mark} [{c['area']}] {c['name']}  ({c['safeguard']})")
            if not c["passed"] and c["remediation"]:
                click.echo(f"         -> {c['remediation']}")
    emit(as_json, data, human)


REPORT_FORMATS = ("pdf", "md", "json")


@compliance_cmd.command(name="report")
@click.option("--format", "fmt", required=True, metavar="pdf|md|json", help="pdf, md or json")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the file to write (mode 0600; replaced atomically)")
@click.option("--since", default=None, metavar="DATE", help="start of the period (default: 90 days ago)")
@click.option("--until", default=None, metavar="DATE", help="end of the period (default: now)")
@remote_options()
def compliance_report_cmd(state: CliState, fmt: str, out: Path, since, until, socket_path, as_json) -> None:
    """Write the signed compliance report (score, HIPAA safeguards, audit-chain proof,
    the period's erasures) to FILE; `strongroom compliance verify FILE` checks it."""
    from strongroom.core.errors import ValidationError
    from strongroom.core.fsutil import write_atomic

    fmt = fmt.strip().lower()
    if fmt not in REPORT_FORMATS:    # refused here by name (never repeating it), before the daemon is asked
        raise ValidationError(f"compliance report: unknown format (known: {', '.join(REPORT_FORMATS)})")
    if not out.parent.is_dir():
        raise StrongroomError("compliance report: the --out file's directory does not exist")
    args = {"format": fmt, "since": since, "until": until}
    result = run_remote(state, socket_path, lambda c: c.call("compliance.document.create", args))
    write_atomic(out, base64.b64decode(result["data"]), mode=0o600)
    summary = {k: result[k] for k in ("format", "sha256", "size", "score")} | {"out": str(out)}
    emit(as_json, summary, lambda d: click.echo(
        f"wrote {d['out']} ({d['format']}, {d['size']} bytes, score {d['score']}/100, sha256 {d['sha256']})"))


# `compliance verify` is offline (it reads the signing key's public half from the
# database itself), so it lives with the offline commands.
from strongroom.console.cli.compliance_verify import verify_cmd  # noqa: E402

compliance_cmd.add_command(verify_cmd)
