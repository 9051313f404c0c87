"""How control commands are named, and the old names kept working for one release.

A command's name is `noun[.subnoun].verb`: lower-case nouns in the singular (`job`, not
`jobs`; `sync.conflict`, not `sync.conflicts`), then one verb from VERBS. Four commands
are a single word, named for what they answer rather than an action on a thing
(SINGLE_WORD: `help`, `status`, `health`, `whoami`); they stay as they have always been.
The daemon enforces the rule when a command registers (daemon/commands.py), so a new
command cannot drift from it.

RENAMED maps every name the protocol had before the rule to its name now. The daemon
registers each old name as a deprecated alias of the new one for one release (same
handler, same permission, same rate-limit class), `help` lists them as such, and
docs/protocol.md has the table. Clients (the console, the CLI, scripts) should call the
new names; this table is the one place to look an old name up.
"""
from __future__ import annotations

import re

# The verbs a command name may end with. Kept small on purpose: add one only when none
# of these says what a new command does.
VERBS = frozenset({
    # read
    "list", "get", "show", "find", "tail", "check", "verify",
    # make, change, end
    "add", "create", "set", "remove", "revoke", "cancel", "run", "test",
    # sessions
    "login", "logout", "enrol",
    # four-eyes and queues
    "request", "approve", "reject", "resolve", "merge", "dismiss", "undo", "accept",
    # state of a thing
    "lock", "unlock", "reset", "pause", "resume", "place", "release", "forget",
    # transfers
    "commit", "abort",
})

SINGLE_WORD = frozenset({"help", "status", "health", "whoami"})

# Nouns that end in "s" and are singular all the same.
SINGULAR_ENDING_IN_S = frozenset({"status"})

_PART = re.compile(r"^[a-z][a-z0-9_]*$")

# Old name -> new name. Every old name still works (a deprecated alias) for one release.
RENAMED: dict[str, str] = {
    "jobs.list": "job.list",
    "jobs.kinds": "job.kind.list",
    "backups.list": "backup.list",
    "backup.configurations": "backup.configuration.list",
    "backup.requests": "backup.request.list",
    "backup.approve": "backup.request.approve",
    "security.events": "security.event.list",
    "sessions.list": "session.list",
    "users.list": "user.list",
    "user.reset_2fa": "user.totp.reset",
    "user.set_role": "user.role.set",
    "user.grants": "user.grant.list",
    "user.grant": "user.grant.add",
    "user.revoke_grant": "user.grant.revoke",
    "user.consent": "user.consent.add",
    "user.devices": "user.device.list",
    "roles.list": "role.list",
    "compliance.report": "compliance.report.get",
    "compliance.document": "compliance.document.create",
    "notify.test": "notification.test",
    "clients.find": "client.find",
    "exports.list": "export.list",
    "exports.show": "export.show",
    "exports.tables": "export.table.list",
    "exports.run": "export.run",
    "exports.save": "export.configuration.create",
    "exports.configure": "export.configuration.set",
    "exports.configurations": "export.configuration.list",
    "files.add": "file.add",
    "files.add.chunk": "file.chunk.add",
    "files.add.commit": "file.upload.commit",
    "files.add.abort": "file.upload.abort",
    "files.list": "file.list",
    "files.get": "file.get",
    "files.get.chunk": "file.chunk.get",
    "files.remove": "file.remove",
    "integrity.report": "integrity.report.get",
    "services.list": "service.list",
    "services.add": "service.add",
    "services.set": "service.set",
    "retention.policies": "retention.policy.list",
    "retention.plan": "retention.plan.get",
    "holds.list": "hold.list",
    "holds.place": "hold.place",
    "holds.release": "hold.release",
    "erasure.certificate": "erasure.certificate.get",
    "sync.peers": "sync.peer.list",
    "sync.status": "sync.status.get",
    "sync.quarantine": "sync.quarantine.list",
    "sync.conflicts": "sync.conflict.list",
    "sync.conflict": "sync.conflict.get",
    "sync.conflict.field": "sync.conflict.field.get",
    "sync.resolve": "sync.conflict.resolve",
}


def current(name: str) -> str:
    """The name a command has now, given either its name or an old one."""
    return RENAMED.get(name, name)


def aliases_of(name: str) -> tuple[str, ...]:
    """The old names that still reach the command called `name`."""
    return tuple(old for old, new in RENAMED.items() if new == name)


def naming_problem(name: str) -> str | None:
    """Why `name` breaks the naming rule, or None when it keeps it."""
    if name in SINGLE_WORD:
        return None
    parts = name.split(".")
    if len(parts) < 2:
        return "a command name is noun[.subnoun].verb (single words are only " + ", ".join(sorted(SINGLE_WORD)) + ")"
    if not all(_PART.match(p) for p in parts):
        return "each part of a command name is lower-case letters, digits and underscores"
    *nouns, verb = parts
    if verb not in VERBS:
        return f"{verb!r} is not one of the verbs a command may end with (core/protocol/names.py VERBS)"
    plural = [n for n in nouns if n.endswith("s") and n not in SINGULAR_ENDING_IN_S]
    if plural:
        return f"nouns are singular: {', '.join(plural)}"
    return None
