"""Control commands about clients for the console's pickers.

`client.find` looks clients up by exact search terms through their blind indexes
(core.repository.clients.pick_clients): a person choosing the client of a legal hold, an
erasure request or an export filter types a last name, an email or the SSN's last four
digits instead of pasting an id. The answer is masked for everyone (ids, status, when
recorded, initials), at most a page of matches, and audited as one READ naming which
kinds of term were given, never the terms: whether someone is a client is itself
confidential. A caller bound to a practice sees only that practice's clients.
"""
from __future__ import annotations

from typing import TYPE_CHECKING


from strongroom.core.db.engine import transaction
from strongroom.core.repository.clients import pick_clients

from strongroom.core.protocol.models.clients import FindArgs, FindResult
from strongroom.daemon.commands import Call, command

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon


@command("client.find", permission="table:clients:read", args=FindArgs, result=FindResult)
def find_cmd(d: "Daemon", call: Call) -> dict:
    """Clients matching every term given (at least one), masked: {clients: [{id, name,
    status, created_at}], more: whether there were more than a page}."""
    a: FindArgs = call.args
    with transaction(d.ctx.engine) as conn:
        return pick_clients(conn, d.ctx.keyring, call.principal, last_name=a.last_name, email=a.email,
                            ssn_last4=a.ssn_last4, practice_id=call.principal.practice_id)
