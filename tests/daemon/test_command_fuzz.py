"""Every registered command, every argument, hostile values: a specific answer, never
`internal`, and nothing typed comes back in an error, an event, a log line or a job record.

The daemon serves one practice's PHI; a value sent in a request may itself be PHI (an
email where a table name belongs, a social security number as a configuration name),
so the daemon names the field and the rule it broke and never repeats the value. The
commands are read from the registry, so a new command is covered the day it lands.
"""
from __future__ import annotations

import json
import types
import typing
import uuid

import zmq
from pydantic import BaseModel

import strongroom.daemon.main  # noqa: F401  (imports every command module)
from strongroom.daemon.commands import REGISTRY
from strongroom.core.protocol import ERROR_CODES
from tests.daemon.conftest import assert_alive, nested

# PHI-shaped markers: an email, a social security number, a name. None may come back.
EMAIL = "jane.q.doe@example.org"
SSN = "123-45-6789"
NAME = "Ximena Quetzalli"
PHI = (EMAIL, SSN, NAME)
HUGE = "h" * 100_000
HOSTILE: tuple[object, ...] = (EMAIL, SSN, NAME, HUGE, "\ud800", "", [], {}, nested(30), True, 1.5, -1,
                               2 ** 63, -(2 ** 70), None)


def _plausible(annotation: object) -> object:
    """A value of the right type, so that a hostile value in one field reaches the
    handler with every other field valid."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _plausible(next(a for a in typing.get_args(annotation) if a is not type(None)))
    if origin is typing.Literal:
        return typing.get_args(annotation)[0]
    if origin is list:
        return []
    if origin is dict:
        return {}
    if annotation is uuid.UUID:
        return str(uuid.UUID(int=1))
    if annotation is bool:
        return False
    if annotation is int:
        return 1
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {}
    return "fuzz"


def cases() -> list[tuple[str, dict]]:
    found = []
    for name, command in sorted(REGISTRY.items()):
        fields = command.args.model_fields
        base = {f: _plausible(info.annotation) for f, info in fields.items() if info.is_required()}
        for field in fields:
            for value in HOSTILE:
                found.append((name, {**base, field: value}))
        found.append((name, {**base, "extra": EMAIL}))
        found.append((name, {**base, EMAIL: 1}))
    return found


class Raw:
    """One DEALER socket for thousands of requests (the real client opens one per call)."""

    def __init__(self, endpoint: str, token: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 30_000)
        self.sock.connect(endpoint)
        self.token = token
        self.sent = 0

    def call(self, cmd: str, args: dict) -> dict:
        self.sent += 1
        request_id = f"f{self.sent}"
        self.sock.send(json.dumps({"v": 1, "id": request_id, "cmd": cmd, "token": self.token,
                                   "args": args}).encode())
        while True:
            reply = json.loads(self.sock.recv())
            if reply["id"] == request_id:
                return reply

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


def _subscribe(endpoint: str):
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    return ctx, sub


def _drain(sub) -> list[bytes]:
    seen = []
    while True:
        try:
            seen.append(b"".join(sub.recv_multipart(zmq.NOBLOCK)))
        except zmq.Again:
            return seen


def _shown(args: dict) -> dict:
    return {k[:30]: repr(v)[:30] for k, v in args.items()}


def _leaks(text: str) -> list[str]:
    return [marker for marker in PHI + (HUGE[:64],) if marker in text]


def test_every_command_answers_hostile_arguments_specifically_and_repeats_none_of_them(daemon):
    ctx, sub = _subscribe(daemon.events_endpoint)
    raw = Raw(daemon.endpoint, daemon.local_token())
    internal, echoed = [], []
    try:
        for cmd, args in cases():
            reply = raw.call(cmd, args)
            if reply["ok"]:
                continue
            code, message = reply["error"]["code"], reply["error"]["message"]
            assert code in ERROR_CODES and message
            if code == "internal":
                internal.append((cmd, _shown(args)))
            if _leaks(message) or "\ud800" in message:
                echoed.append((cmd, _shown(args), message[:200]))
        events = "\n".join(e.decode(errors="replace") for e in _drain(sub))
    finally:
        raw.close()
        sub.close()
        ctx.term()
    assert not internal, f"{len(internal)} requests answered internal, e.g. {internal[:5]}"
    assert not echoed, f"{len(echoed)} errors repeat the input: " + "; ".join(
        sorted({f"{cmd} {message[:90]}" for cmd, _, message in echoed}))
    assert not _leaks(events), "an event repeats a value from a request: " + "; ".join(
        line[:160] for line in events.splitlines() if _leaks(line))
    assert not _leaks(daemon.log()), "the daemon log repeats a value from a request"
    records = json.dumps(daemon.call("job.list", {"limit": 1000}))
    assert not _leaks(records), "a job record repeats a value from a request"
    assert_alive(daemon)
