"""The control protocol described from the registry itself: docs/protocol.md.

A hand-written description drifts (the old one documented a `backup.run` that never
existed); this one is rendered from `REGISTRY` (each command's permission, help text,
argument model and result model), the old names kept as aliases, the job-kind table and
the protocol's error codes, and a test fails
when the committed file differs from what the code would write. Regenerate with
`python -m strongroom.daemon.protocol_doc > docs/protocol.md`.
"""
from __future__ import annotations

import importlib
import json
from typing import Any

from strongroom.core.jobs.kinds import KINDS
from strongroom.core.protocol import ERROR_CODES, PROTOCOL_VERSION, schema_type
from strongroom.core.protocol.names import SINGLE_WORD, VERBS
from strongroom.daemon.control import IN_FLIGHT_BYTES, IN_FLIGHT_REQUESTS, RECEIVE_QUEUE

EVENTS = {
    "health": "the health snapshot (the `health` command's answer), every health interval",
    "job.<run id>": ("a run's progress: status, done, total, unit (what done and total count), message; "
                     "its final status and error"),
    "audit": "each new audit entry: id, time, action, table, outcome (never who, which record or details: "
             "audit.tail tells those to whom it may)",
    "security": "each new security event (id, time, type, severity) and login outcomes (never a username, "
                "session or address: security.event.list tells those to whom it may)",
    "sync.conflict": "a sync conflict resolved: its id and table (never its row or who resolved it; conflicts a "
                     "pass opens are counted in `sync.pass`)",
    "integrity": "each check of a finished integrity run: run id, check name, status (ok, warn, fail), "
                 "expected and actual verdict (never its evidence: row ids stay in the run's record)",
    "sync.pass": "each pass of a finished sync run: run id, peer, outcome (succeeded, failed, skipped), "
                 "rows sent and received, conflicts, quarantined, rule decisions, keys destroyed, seconds, "
                 "clock skew; the error of a failed pass (never an address or a row)",
    "compliance": "the compliance score moved: score, threshold, status (ok, below threshold), generated_at; "
                  "once when the daemon first scores, then on each change of score, threshold or status",
    "daemon.stopping": "the daemon is shutting down (SIGTERM or SIGINT): grace_seconds; consoles show their "
                       "reconnect banner at once instead of after a silence",
}

ERRORS = {
    "bad_request": "the frame or an argument is malformed; the message names the field and the rule, never the value",
    "unauthenticated": "no token, or a token that is unknown, expired, revoked or from the wrong transport",
    "forbidden": "the caller lacks the permission the command names",
    "not_found": "the command, or the thing it names, does not exist",
    "conflict": "the action clashes with the current state (already running, standby daemon, held)",
    "rate_limited": "too many attempts (logins), the login pool is full, or an account's hourly allowance for a command class is spent: try again later",
    "not_implemented": "a command or job kind planned but not in this release",
    "internal": "a bug: the daemon log has the traceback; no input should ever produce it",
}


def _bounds(schema: dict[str, Any]) -> str:
    parts = [f"{word} {schema[key]}" for key, word in (("minimum", "≥"), ("maximum", "≤"),
                                                       ("minLength", "length ≥"), ("maxLength", "length ≤"),
                                                       ("maxItems", "items ≤"), ("pattern", "pattern"))
             if key in schema]
    for branch in schema.get("anyOf", []):
        parts += [p for p in _bounds(branch).split("; ") if p and p not in parts]
    return "; ".join(parts)


def _fields(schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    lines = []
    for name, spec in schema.get("properties", {}).items():
        given = ("required" if name in required else
                 f"default `{json.dumps(spec['default'])}`" if "default" in spec else "optional")
        cells = [f"`{name}`", schema_type(spec), given, _bounds(spec)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def _result_schemas(registry) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Each command's result type in a few words, and every model a result uses, by name."""
    types, models = {}, {}
    for name, command in registry.items():
        schema = command.result_adapter.json_schema(ref_template="#/$defs/{model}")
        for model, spec in schema.pop("$defs", {}).items():
            if models.setdefault(model, spec) != spec:
                raise RuntimeError(f"two result models are called {model}: rename one")
        if "properties" in schema and "title" in schema:      # a model at the top
            models.setdefault(schema["title"], schema)
            types[name] = schema["title"]
        else:
            types[name] = schema_type(schema)
    return types, models


def _result_fields(schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    lines = []
    for name, spec in schema.get("properties", {}).items():
        cells = [f"`{name}`", schema_type(spec), "always" if name in required else "may be absent"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def render() -> str:
    importlib.import_module("strongroom.daemon.main")     # registers every command module
    from strongroom.daemon.commands import ALIASES, REGISTRY

    result_types, result_models = _result_schemas(REGISTRY)

    out = [
        "# The strongroomd control protocol",
        "",
        "Generated from the command registry by `python -m strongroom.daemon.protocol_doc`; "
        "a test fails when this file and the code disagree.",
        "",
        f"Protocol version {PROTOCOL_VERSION}. Transport: ZeroMQ. A request is one frame holding one "
        "UTF-8 JSON object (file content alone follows it in a binary frame, below) on the ROUTER socket (`ipc://<runtime dir>/control.sock`, or the "
        "CURVE-encrypted `tcp_endpoint`):",
        "",
        "```json",
        '{"v": 1, "id": "<client-chosen id>", "cmd": "job.run", "token": "<session token>", '
        '"args": {"kind": "integrity"}}',
        "```",
        "",
        "and the answer is one frame: `{\"v\": 1, \"id\": ..., \"ok\": true, \"result\": ...}` or "
        "`{\"v\": 1, \"id\": ..., \"ok\": false, \"error\": {\"code\": ..., \"message\": ...}}`. Frames "
        "nest at most 32 levels and hold valid Unicode; unknown argument keys are refused.",
        "",
        "File content travels as a raw binary frame, not in the JSON: a command marked *takes a "
        "binary frame* below (file.chunk.add) may be sent as two frames, the JSON request then "
        "the content; the answer to file.chunk.get on a download opened with `framed: true` is "
        "two frames, the JSON answer (`size`, `final`) then the content. A REQ socket's empty "
        "delimiter goes before the JSON frame. Refused with `bad_request`, changing nothing: more "
        "than one binary frame, a binary frame to a command that takes none, one over "
        "`[daemon] max_frame_bytes`, content both inline and as a frame, or in the form its "
        "transfer was not opened for. Without `framed`, pieces travel as base64 `data` in the "
        "JSON, as before (kept for one release).",
        "",
        f"Requests may be pipelined (sent before earlier ones are answered; match answers by `id`). "
        f"The daemon answers at most {IN_FLIGHT_REQUESTS} requests from one socket at once, "
        f"holding at most {IN_FLIGHT_BYTES // 2**20} MiB of their frames; past that it reads no "
        f"more from the socket until one is answered, and ZeroMQ keeps at most {RECEIVE_QUEUE} "
        f"more per client before the client's sends wait. Nothing is dropped.",
        "",
        "A signed-in person's commands of a class `[auth] rate_limits` limits (the first part of "
        "the command's name as the classes were first named: `exports` for export.run and export.list, "
        "which were exports.run and exports.list) also get `\"rate\": {\"class\", \"limit\", \"remaining\", "
        "\"reset_seconds\"}` in the answer: what is left of the hour's allowance. When it is "
        "spent the answer is the error `rate_limited`.",
        "",
        "## Errors",
        "",
        "| code | meaning |",
        "| --- | --- |",
        *[f"| `{code}` | {ERRORS[code]} |" for code in ERROR_CODES],
        "",
        "## Events",
        "",
        "Published on the PUB socket (`events.sock`) as two frames: the topic, and "
        "`{\"topic\", \"ts\", \"data\"}`.",
        "",
        "| topic | data |",
        "| --- | --- |",
        *[f"| `{topic}` | {what} |" for topic, what in EVENTS.items()],
        "",
        "## Names",
        "",
        "A command is named `noun[.subnoun].verb`: nouns in the singular, then one verb of "
        + ", ".join(f"`{v}`" for v in sorted(VERBS)) + ". "
        + ", ".join(f"`{w}`" for w in sorted(SINGLE_WORD)) + " are single words, named for what they "
        "answer. The daemon refuses to register a command that breaks the rule "
        "(core/protocol/names.py).",
        "",
        "## Deprecated names",
        "",
        "The names commands had before the rule still work for one release: each is an alias of "
        "its new name (same handler, permission and rate-limit class), and `help` lists it with "
        "`alias_of`. Call the new names.",
        "",
        "| old name | new name |",
        "| --- | --- |",
        *[f"| `{old}` | `{new}` |" for old, new in sorted(ALIASES.items())],
        "",
        "## Commands",
        "",
        "Each command's arguments (unknown keys are refused) and its result: the model named "
        "under Result models below.",
        "",
    ]
    for name, command in sorted(REGISTRY.items()):
        who = "no token" if command.public else (f"`{command.permission}`" if command.permission
                                                  else "any session (the handler checks more)")
        text = " ".join((command.handler.__doc__ or "(no description)").split())
        out += [f"### `{name}`", "", text, "", f"Needs: {who}." + (
            " Takes a binary frame after the JSON frame." if command.takes_content else ""), ""]
        rows = _fields(command.args.model_json_schema())
        if rows:
            out += ["| argument | type | given | bounds |", "| --- | --- | --- | --- |", *rows, ""]
        out += [f"Result: `{result_types[name]}`." + (
            f" Old name: {', '.join(f'`{a}`' for a in command.aliases)} (deprecated)." if command.aliases else ""), ""]
    out += ["## Result models", "",
            "The fields of every model a result is made of (times as ISO 8601 text, ids as UUID "
            "text). An `object` field is open by nature: core/protocol/models says what it holds.", ""]
    for model, schema in sorted(result_models.items()):
        out += [f"### {model}", ""]
        if schema.get("description"):
            out += [" ".join(schema["description"].split()), ""]
        out += ["| field | type | present |", "| --- | --- | --- |", *_result_fields(schema), ""]
    out += ["## Job kinds (`job.run` params)", ""]
    for kind in KINDS.values():
        how = "planned" if kind.planned else ("on request only" if kind.on_request_only else "schedulable")
        out += [f"### `{kind.name}`", "", f"{kind.summary} ({how}; needs `job:{kind.name}:run`)", ""]
        rows = _fields(kind.params.model_json_schema())
        if rows:
            out += ["| param | type | given | bounds |", "| --- | --- | --- | --- |", *rows, ""]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
