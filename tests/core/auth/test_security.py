from __future__ import annotations

import pytest
from auth_helpers import T0, audit_actions, events

from strongroom.core.auth import security
from strongroom.core.db.engine import transaction


def test_record_writes_event_and_audit_entry_together(ctx):
    with transaction(ctx.engine) as conn:
        security.record(conn, "login_failed", severity="low", username="alice",
                        ip_address="10.0.0.1", details={"reason": "bad_password"}, now=T0)
        security.record(conn, "something_odd", severity="high", description="odd", now=T0)
    stored = events(ctx.engine)
    assert [e["event_type"] for e in stored] == ["login_failed", "something_odd"]
    assert stored[0]["occurred_at"] == T0 and stored[0]["ip_address"] == "10.0.0.1"
    assert audit_actions(ctx.engine) == ["LOGIN_FAILED", "SECURITY"]


def test_event_rolls_back_with_its_transaction(ctx):
    with pytest.raises(RuntimeError):
        with transaction(ctx.engine) as conn:
            security.record(conn, "login_failed", username="alice", now=T0)
            raise RuntimeError("caller failed")
    assert events(ctx.engine) == [] and audit_actions(ctx.engine) == []


@pytest.mark.parametrize("key", ["password", "totp_code", "session_token", "Secret"])
def test_details_that_name_a_secret_are_refused(ctx, key):
    with transaction(ctx.engine) as conn:
        with pytest.raises(ValueError, match="looks like a secret"):
            security.record(conn, "login_failed", details={key: "x"})


def test_unknown_severity_is_refused(ctx):
    with transaction(ctx.engine) as conn:
        with pytest.raises(ValueError, match="severity"):
            security.record(conn, "login_failed", severity="apocalyptic")
