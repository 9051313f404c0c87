"""auth.login, auth.enrol, auth.logout, whoami: sessions and who a token is."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result


class ClientInfo(Args):
    host: str | None = Field(default=None, max_length=255)
    ssh_connection: str | None = Field(default=None, max_length=255)
    name: str | None = Field(default=None, max_length=64)
    version: str | None = Field(default=None, max_length=32)


class LoginArgs(Args):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=12)
    client: ClientInfo = ClientInfo()


class EnrolArgs(Args):
    enrolment_token: str = Field(min_length=1, max_length=1024)
    totp: str = Field(min_length=1, max_length=12)
    client: ClientInfo = ClientInfo()


class InvitationAcceptArgs(Args):
    """An invitation (`user.add`'s token) and the password its holder chooses."""
    invitation: str = Field(min_length=1, max_length=1024)
    password: str = Field(min_length=1, max_length=1024)
    client: ClientInfo = ClientInfo()


class SessionToken(Result):
    """A new session: the token is shown this once."""
    token: str
    session_id: uuid.UUID
    expires_at: datetime
    idle_timeout_seconds: int


class PendingEnrolment(Result):
    """A second factor offered at login: its secret (as text, URI and QR) and the token
    auth.enrol confirms it with."""
    username: str
    expires_at: datetime
    token: str
    secret: str
    uri: str
    qr_text: str


class EnrolmentRequired(Result):
    enrolment_required: Literal[True]
    message: str
    enrolment: PendingEnrolment


LoginResult = SessionToken | EnrolmentRequired


class LogoutResult(Result):
    logged_out: bool
    session_id: uuid.UUID | None = None


class WhoamiResult(Result):
    actor: str
    permissions: list[str]
    session_id: str | None
