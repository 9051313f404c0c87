"""files_rescan: scan client files left pending (clamd was down, timed out or refused
the stream when they were added) and record each verdict.

Each pending file is read back from the files store a chunk at a time (authenticated
as it is read) and streamed to clamd, oldest first, up to `limit` files per run.
Clean files become servable; infected ones are tombstoned with status `infected`,
their content deleted and a `malware_found` security event recorded
(core.files.repository.rescan_file). If clamd cannot be reached the run fails at
once and every file stays pending; a file clamd refuses (its StreamMaxLength) or whose
content does not authenticate stays pending, is counted, and fails the run at the end
so an operator sees it, after the other files were scanned.
"""
from __future__ import annotations

import logging
from typing import Any

from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.errors import ConfigError, IntegrityError, StrongroomError
from strongroom.core.files import repository
from strongroom.core.files.scan import ScannerUnavailable, ScanRefused, scanner_for
from strongroom.core.files.store import open_files_target
from strongroom.core.jobs import kinds
from strongroom.core.principal import Principal

log = logging.getLogger(__name__)


def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    """Scan up to `limit` pending files; returns counts by outcome."""
    options = kinds.parse("files_rescan", params)
    clamd = scanner_for(ctx.settings.files)
    if clamd is None:
        raise ConfigError('[files] scanner is "off": nothing can scan pending files')
    clamd.ping()   # ScannerUnavailable: clamd is down, every file stays pending
    principal = Principal(str(params.get("actor") or "system:files_rescan"), frozenset())
    target = open_files_target(ctx.settings)
    with transaction(ctx.engine, read_only=True) as conn:
        pending = repository.pending_files(conn, limit=options.limit)
    result: dict[str, Any] = {"pending": len(pending), "clean": 0, "infected": 0, "refused": 0,
                              "unreadable": 0, "gone": 0}
    progress(0, len(pending), "scanning pending client files")
    for done, file_id in enumerate(pending, 1):
        try:
            status = repository.rescan_file(ctx.engine, ctx.keyring, principal, target, clamd, file_id)
        except ScanRefused as exc:
            status = "refused"
            log.warning("clamd refused a file", extra={"file_id": str(file_id), "error": str(exc)})
        except IntegrityError as exc:
            status = "unreadable"
            log.warning("a pending file's content does not authenticate",
                        extra={"file_id": str(file_id), "error": str(exc)})
        except ScannerUnavailable as exc:
            raise StrongroomError(f"clamd stopped answering after {done - 1} of {len(pending)} files: "
                                  f"{exc}; the rest stay pending") from None
        result[status] = result.get(status, 0) + 1
        progress(done, len(pending), f"{done} of {len(pending)} files scanned")
    if result["refused"] or result["unreadable"]:
        raise StrongroomError(f"{result['refused']} file(s) refused by clamd (size limit) and "
                              f"{result['unreadable']} unreadable stay pending; {result['clean']} clean, "
                              f"{result['infected']} infected")
    return result
