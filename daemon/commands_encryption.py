"""The practice's encryption level over the control socket (core/encryption_levels.py),
so the console, which never opens the database, can show and change it.

Reading it is compliance evidence (`compliance:read`, as compliance.report.get, whose
report carries the same check). Putting another level in force needs `keys:manage`: a
level is a statement about key custody (a KMS-held KEK) and backup immutability, which
are the operators' to vouch for, and the practice owner (ADMIN) deliberately lacks it;
it also guards lowering a level, which weakens what the practice promises. A level the
running configuration does not meet is refused by the core (conflict, naming each unmet
requirement and what would meet it) before anything is written; a change is audited there.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from strongroom.core import encryption_levels
from strongroom.core.db.engine import transaction
from strongroom.core.protocol.models.encryption import EncryptionSetArgs, EncryptionStatus
from strongroom.core.protocol.models.practice import PracticeArgs
from strongroom.daemon.commands import Call, command
from strongroom.daemon.tenancy import practice_for

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon


def _practice(conn, call: Call):
    return practice_for(conn, call.principal, call.args.practice_id)


def _offered(d: "Daemon", conn, status: dict) -> dict:
    """`status` with every level checked now, so a picker can say what each asks for."""
    checks = []
    for level in status["levels"]:
        found = encryption_levels.requirements(d.ctx.settings, conn, level)
        checks.append({"level": level, "met": all(r.met for r in found), "requirements": [asdict(r) for r in found]})
    return {**status, "offered": checks}


@command("practice.encryption.show", permission="compliance:read", args=PracticeArgs, result=EncryptionStatus)
def encryption_show_cmd(d: "Daemon", call: Call) -> dict:
    """The practice's encryption level in force, whether it is met now, and each of its
    requirements with the evidence checked (and every other level, checked the same way)."""
    with transaction(d.ctx.engine, read_only=True) as conn:
        return _offered(d, conn, encryption_levels.status(d.ctx.settings, conn, _practice(conn, call)))


@command("practice.encryption.set", permission="keys:manage", args=EncryptionSetArgs, result=EncryptionStatus)
def encryption_set_cmd(d: "Daemon", call: Call) -> dict:
    """Put an encryption level in force (standard, high, military); refused, changing
    nothing, unless the running configuration meets every requirement of it."""
    with transaction(d.ctx.engine) as conn:
        return _offered(d, conn, encryption_levels.set_level(d.ctx.settings, conn, _practice(conn, call),
                                                             call.args.level, actor=call.principal.actor))
