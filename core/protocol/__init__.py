"""The control protocol's frames, written down once for the daemon and every client.

It lives in core, not in the daemon, because both sides import it and the console
must never import the daemon (DESIGN §1); it is JSON and pydantic only, no ZeroMQ.

Transport: ZeroMQ. Requests go to a ROUTER socket; a client uses a DEALER (or REQ)
socket and sends one frame holding one UTF-8 JSON object:

    {"v": 1, "id": "<client-chosen id>", "cmd": "job.run", "token": "...", "args": {...}}

and gets back one frame:

    {"v": 1, "id": "<same id>", "ok": true, "result": ...}
    {"v": 1, "id": "<same id>", "ok": false, "error": {"code": "forbidden", "message": "..."}}

A command that moves file content (file.chunk.add, and file.chunk.get when the
transfer was opened with `framed`) carries it in a second, raw binary frame instead
of base64 inside the JSON: the request is [JSON, content] and the reply [JSON, content].
A REQ client's empty delimiter comes before the JSON frame. Any other shape (more
frames, a binary frame to a command that takes none, a binary frame over the frame
limit, content both inline and as a frame) is refused with bad_request. The JSON-only
base64 form (`data`) stays for one release for clients that do not ask for `framed`.

Events are published on a PUB socket as two frames, topic and JSON body
{"topic": ..., "ts": ..., "data": {...}}; topics are `health`, `job.<run id>`, `audit`,
`security`, `sync.conflict`, `sync.pass`, `integrity`. Error codes are the fixed set in ERROR_CODES.

Each command's arguments and result have a model in core/protocol/models, and command
names follow core/protocol/names.py (old names stay as aliases for one release).
"""
from __future__ import annotations

import enum
import json
import time
import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from strongroom.core.validation import MAX_DEPTH, depth, describe, has_lone_surrogate

PROTOCOL_VERSION = 1
ERROR_CODES = ("bad_request", "unauthenticated", "forbidden", "not_found", "conflict",
               "rate_limited", "not_implemented", "internal")
ErrorCode = Literal["bad_request", "unauthenticated", "forbidden", "not_found", "conflict",
                    "rate_limited", "not_implemented", "internal"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    v: int
    id: str = Field(min_length=1, max_length=64)
    cmd: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
    token: str | None = Field(default=None, max_length=512)
    args: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """A failed reply's `error`: every error() reply is built through it."""
    code: ErrorCode
    message: str


class Reply(BaseModel):
    """A reply frame as a client reads it (docs/protocol.md describes it from this model);
    `result` is the command's result model, `rate` present for a rate-limited class."""
    v: int = PROTOCOL_VERSION
    id: str | None
    ok: bool
    result: Any = None
    error: ErrorBody | None = None
    rate: dict | None = None


class ProtocolError(Exception):
    """A frame that cannot be answered normally; carries the error code to send back."""

    def __init__(self, code: ErrorCode, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


def parse_request(frame: bytes, max_bytes: int) -> Request:
    """Decode one request frame; every failure is a ProtocolError(bad_request) naming why."""
    if len(frame) > max_bytes:
        raise ProtocolError("bad_request", f"frame of {len(frame)} bytes exceeds the limit of {max_bytes}")
    try:
        data = json.loads(frame.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolError("bad_request", "frame is not UTF-8") from None
    except ValueError:
        raise ProtocolError("bad_request", "frame is not JSON") from None
    except RecursionError:
        raise ProtocolError("bad_request", f"frame nests deeper than {MAX_DEPTH} levels") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_request", "frame must be a JSON object")
    request_id = data.get("id") if isinstance(data.get("id"), str) and len(data["id"]) <= 64 else None
    if depth(data) > MAX_DEPTH:
        raise ProtocolError("bad_request", f"frame nests deeper than {MAX_DEPTH} levels", request_id)
    if has_lone_surrogate(data):
        raise ProtocolError("bad_request", "frame holds a string that is not valid Unicode (a lone surrogate)",
                            request_id)
    if data.get("v") != PROTOCOL_VERSION:
        raise ProtocolError("bad_request", f"unsupported protocol version; this daemon speaks v{PROTOCOL_VERSION}",
                            request_id)
    try:
        return Request.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError("bad_request", describe(exc, Request, "invalid request"), request_id) from None


def ok(request_id: str | None, result: Any, rate: dict | None = None) -> bytes:
    """A success reply; `rate` (class, limit, remaining, reset_seconds) when the command
    counts towards a per-user rate limit (daemon/ratelimit.py)."""
    body = {"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result}
    if rate is not None:
        body["rate"] = rate
    return json.dumps(body, default=str, separators=(",", ":")).encode()


def error(request_id: str | None, code: ErrorCode, message: str) -> bytes:
    """An error reply; ErrorBody refuses a code outside ERROR_CODES."""
    body = ErrorBody(code=code, message=message)
    return json.dumps({"v": PROTOCOL_VERSION, "id": request_id, "ok": False, "error": body.model_dump()},
                      separators=(",", ":")).encode()


def event(topic: str, data: dict) -> list[bytes]:
    body = json.dumps({"topic": topic, "ts": time.time(), "data": data}, default=str,
                      separators=(",", ":")).encode()
    return [topic.encode(), body]


def request(cmd: str, args: dict | None = None, *, token: str | None = None, request_id: str) -> bytes:
    return json.dumps({"v": PROTOCOL_VERSION, "id": request_id, "cmd": cmd, "token": token,
                       "args": args or {}}, default=str).encode()


def to_jsonable(value: Any) -> Any:
    """Plain JSON types only: UUIDs and times as strings, enums as values, bytes dropped."""
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None  # ciphertext and hashes never leave the daemon in replies
    return value


def schema_type(schema: dict[str, Any] | bool, *, null: bool = True) -> str:
    """A JSON-schema property's type in a few words (`uuid`, `list[string]`, `"csv" or
    "ndjson"`, `map[str, string]`), for the protocol document and `jobs kinds`; `null=False`
    leaves out the `or null` of optional values."""
    if not isinstance(schema, dict):
        return "any"
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        branches = [s for s in schema["anyOf"] if null or not (isinstance(s, dict) and s.get("type") == "null")]
        return " or ".join(dict.fromkeys(schema_type(s, null=null) for s in branches))
    if "enum" in schema:
        return " or ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list[{schema_type(schema.get('items', {}), null=null)}]"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map[str, {schema_type(schema['additionalProperties'], null=null)}]"
    if schema.get("format") in ("uuid", "date-time"):
        return schema["format"]
    return str(kind)
