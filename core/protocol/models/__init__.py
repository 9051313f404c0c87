"""Every control command's arguments and result, one module per area.

Pydantic and the standard library only: the console and the CLI import these to build
requests and read answers, and must never pull in the daemon, the database, ZeroMQ or
Textual (tests/test_architecture.py holds that). The daemon registers each command with
its models (`@command(name, args=..., result=...)`); arguments are validated on the way
in, and with STRONGROOM_CHECK_RESULTS=1 (set by the test suite) every successful result
is validated against its model on the way out.

Results are checked as JSON-ready data (UUIDs and times already strings), so a model's
`uuid.UUID` or `datetime` field accepts its string form. A result model forbids keys it
does not name: a handler that starts returning a new key must declare it here first.
Where a payload is open-ended by nature (a job's params and result, a manifest, audit
details) the model names it as a `dict[str, Any]` field and says why.
"""
from strongroom.core.protocol.models.base import Args, NoArgs, Result

__all__ = ["Args", "NoArgs", "Result"]
