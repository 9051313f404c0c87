"""client.find: the console's client picker (masked answers, audited without the terms)."""
from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result


class FindArgs(Args):
    last_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    ssn_last4: str | None = Field(default=None, max_length=11)


class ClientPicked(Result):
    id: uuid.UUID
    name: str           # masked: "J*** S***"
    status: str
    created_at: datetime


class FindResult(Result):
    clients: list[ClientPicked]
    more: bool          # there were more matches than a page
