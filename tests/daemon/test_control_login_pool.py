"""Logins run on a pool of their own: a flood of auth.login (each an expensive Argon2
verification, by design) cannot starve the other commands, and when the login pool's
backlog is full a login is answered `rate_limited` at once."""
from __future__ import annotations

import asyncio
import statistics
import threading
import time

import pytest

from strongroom.console.client import Client, ClientError
from strongroom.core.errors import RateLimitedError
from strongroom.daemon.commands import REGISTRY
from strongroom.daemon.control import LoginPool
from tests.daemon.conftest import make_data_dir, running_daemon

FLOODERS = 12
# Costs like production's: one verification takes a good part of a core-second here.
SLOW_ARGON2 = ("time_cost = 3\nmemory_kib = 65536\n")


def test_login_enrolment_and_taking_up_an_invitation_are_the_commands_on_the_login_pool():
    """Each hashes or verifies a password (Argon2, expensive by design)."""
    assert {name for name, c in REGISTRY.items() if c.pool == "login"} == {
        "auth.login", "auth.enrol", "auth.invitation.accept"}


def test_a_full_login_pool_answers_rate_limited_at_once_and_runs_on_its_own_threads():
    async def go():
        pool = LoginPool(workers=1, backlog=1)
        release = threading.Event()
        names: list[str] = []

        def slow():
            names.append(threading.current_thread().name)
            release.wait(10)
            return "done"
        first = asyncio.ensure_future(pool.run(slow))
        second = asyncio.ensure_future(pool.run(slow))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(RateLimitedError, match="logins"):
            await pool.run(slow)
        refused_in = time.monotonic() - started
        release.set()
        results = await asyncio.gather(first, second)
        assert await pool.run(lambda: "again") == "again"      # room again once they finished
        pool.close()
        return refused_in, results, names
    refused_in, results, names = asyncio.run(go())
    assert refused_in < 0.05 and results == ["done", "done"]
    assert names and all(n.startswith("strongroom-login") for n in names)


@pytest.fixture
def costly_login_daemon(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url)
    config = data_dir / "strongroom.toml"
    text = config.read_text()
    text = text.replace("login_rate_limit_attempts = 6", "login_rate_limit_attempts = 10000")
    text = text.replace("time_cost = 1\nmemory_kib = 8\n", SLOW_ARGON2)
    assert SLOW_ARGON2 in text
    config.write_text(text)
    with running_daemon(data_dir, tmp_path) as proc:
        yield proc


def test_a_login_flood_does_not_starve_other_commands(costly_login_daemon):
    """12 clients send auth.login (unknown names: one dummy Argon2 verification each) as
    fast as they are answered; meanwhile audit.tail keeps answering promptly. Before the
    login pool the flood filled every worker thread and audit.tail waited seconds."""
    d = costly_login_daemon

    async def go():
        stop = asyncio.Event()
        flood_answers: list[str] = []

        async def flood(i: int):
            client = Client(d.endpoint, timeout=60)
            n = 0
            try:
                while not stop.is_set():
                    n += 1
                    try:
                        await client.call("auth.login", {"username": f"nobody{i}-{n}", "password": "guess guess"})
                    except ClientError as err:
                        flood_answers.append(err.code)
            finally:
                client.close()
        flooders = [asyncio.create_task(flood(i)) for i in range(FLOODERS)]
        await asyncio.sleep(2.0)                   # let the flood fill whatever it can
        probe = Client(d.endpoint, token=d.local_token(), timeout=60)
        latencies = []
        try:
            for _ in range(15):
                started = time.monotonic()
                await probe.call("audit.tail", {"limit": 5})
                latencies.append(time.monotonic() - started)
                await asyncio.sleep(0.1)
        finally:
            probe.close()
            stop.set()
            await asyncio.gather(*flooders)
        return latencies, flood_answers
    latencies, flood_answers = asyncio.run(go())
    assert flood_answers and set(flood_answers) <= {"unauthenticated", "rate_limited"}, d.log()[-4000:]
    # Generous for a busy 2-core machine: the flood took 1-2 s per audit.tail before.
    assert statistics.median(latencies) < 0.5, latencies
