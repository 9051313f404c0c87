"""Per-user command rate limits (daemon/ratelimit.py) and the profile commands that set
them (daemon/commands_profiles.py): a person's commands of a limited class are counted
over a sliding hour, every reply says what is left, the first refusal in a window is a
security event, and the local operator is never limited."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from strongroom.console.client import ClientError
from strongroom.core.principal import Principal
from strongroom.daemon.commands import lookup
from strongroom.daemon.ratelimit import WINDOW, RateLimiter, command_class
from tests.daemon.conftest import PASSWORD


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limiter(limits: dict[str, int]):
    refusals: list[tuple] = []
    clock = Clock()
    limiter = RateLimiter(lambda user_id: limits, lambda p, cls, n: refusals.append((p.actor, cls, n)), clock)
    return limiter, clock, refusals


ALICE = Principal("user:alice", user_id=uuid.uuid4())


def test_a_class_is_the_first_part_of_the_oldest_name_and_chunks_never_count():
    assert command_class("exports.run") == command_class("exports.list") == "exports"
    assert command_class("files.add.chunk") is None and lookup("file.add").rate_class == "files"
    assert command_class("file.chunk.get") is None
    # a renamed command counts towards its old class, so `exports = 30` still applies
    assert lookup("export.run").rate_class == lookup("exports.run").rate_class == "exports"


def test_uses_are_counted_over_a_sliding_hour_with_what_is_left_in_each_reply():
    limiter, clock, refusals = _limiter({"exports": 2})
    limits = limiter.limits_of(ALICE.user_id)
    assert limiter.take(ALICE, "exports", limits)["remaining"] == 1
    clock.now += 600
    assert limiter.take(ALICE, "exports", limits)["remaining"] == 0
    with pytest.raises(Exception) as refused:
        limiter.take(ALICE, "exports", limits)
    assert refused.value.code == "rate_limited" and "2 exports commands per hour" in str(refused.value)
    with pytest.raises(Exception):
        limiter.take(ALICE, "exports", limits)
    assert refusals == [("user:alice", "exports", 2)]                  # recorded once per window
    clock.now += WINDOW - 600                                           # the first use leaves the window
    assert limiter.take(ALICE, "exports", limits)["remaining"] == 0
    assert limiter.take(ALICE, "clients", limits) is None               # an unlimited class


def test_only_people_are_limited():
    limiter, _clock, _ = _limiter({"exports": 1})
    operator = Principal("local:0", permissions=frozenset({"*"}))
    assert not limiter.needs_limits(operator, "exports")
    assert limiter.needs_limits(ALICE, "exports") and not limiter.needs_limits(ALICE, None)


def _call_with_rates(daemon, token: str, cmd: str, args: dict | None = None) -> tuple[object, dict]:
    async def go():
        client = daemon.client(token)
        try:
            return await client.call(cmd, args), dict(client.rates)
        finally:
            client.close()
    return asyncio.run(go())


def test_a_profile_limit_refuses_the_next_command_and_records_it_once(daemon):
    shown = daemon.call("user.profile.set", {"username": "auditor1", "rate_limits": {"exports": 2}})
    assert shown["effective"]["rate_limits"]["exports"] == 2
    token = daemon.call("auth.login", {"username": "auditor1", "password": PASSWORD}, token=None)["token"]
    _, rates = _call_with_rates(daemon, token, "export.list")
    assert rates["exports"]["limit"] == 2 and rates["exports"]["remaining"] == 1
    _, rates = _call_with_rates(daemon, token, "export.list")
    assert rates["exports"]["remaining"] == 0
    for _ in range(2):
        with pytest.raises(ClientError) as refused:
            daemon.call("export.list", token=token)
        assert refused.value.code == "rate_limited"
    assert daemon.call("job.list", token=token) is not None          # another class goes on
    for _ in range(3):
        daemon.call("export.list")                                    # the local operator is not limited

    def limited_events():        # written off the event loop: wait for it
        return daemon.call("security.event.list", {"event_type": "command_rate_limited"})
    for _ in range(50):
        if limited_events():
            break
        time.sleep(0.1)
    (event,) = limited_events()
    assert event["username"] == "auditor1" and event["details"] == {"class": "exports", "limit": 2}


def test_a_profile_looser_than_the_policy_is_refused_naming_the_field(daemon):
    with pytest.raises(ClientError) as refused:
        daemon.call("user.profile.set", {"username": "auditor1", "rate_limits": {"exports": 1000}})
    assert refused.value.code == "bad_request" and "profile.rate_limits.exports" in str(refused.value)
    assert daemon.call("user.profile.show", {"username": "auditor1"})["own"]["rate_limits"] is None


def test_a_person_reads_their_own_profile_and_devices_but_not_anothers(daemon):
    token = daemon.call("auth.login", {"username": "auditor1", "password": PASSWORD,
                                       "client": {"host": "front-desk", "name": "strongroom-cli"}},
                        token=None)["token"]
    assert daemon.call("user.profile.show", token=token)["username"] == "auditor1"
    (device,) = daemon.call("user.device.list", token=token)
    assert "front-desk" in device["label"] and device["logins"] == 1
    consent = daemon.call("user.consent.add", {"version": "2026-1"}, token=token)["hipaa_consent"]
    assert consent["version"] == "2026-1"
    with pytest.raises(ClientError) as refused:
        daemon.call("user.profile.show", {"username": "clinician"}, token=token)
    assert refused.value.code == "forbidden"
