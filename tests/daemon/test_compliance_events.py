"""The `compliance` event: published once the daemon has a score, and again when the
score, threshold or status moves (a console showing the report reloads on it)."""
from __future__ import annotations

import asyncio
import signal

from tests.daemon.conftest import FAST_HEALTH, make_data_dir, running_daemon


def test_compliance_event_carries_the_score_and_follows_a_threshold_change(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url, extra=FAST_HEALTH)
    with running_daemon(data_dir, tmp_path) as daemon:
        async def watch():
            client = daemon.client()
            events = client.subscribe("compliance")
            try:
                # The first score may be published before this subscription is joined
                # (ZeroMQ's slow joiner): then the health snapshot carries it.
                try:
                    topic, first = await asyncio.wait_for(events.recv(), 5)
                    assert topic == "compliance"
                except TimeoutError:
                    for _ in range(40):
                        first = (await client.call("health")).get("compliance")
                        if first:
                            break
                        await asyncio.sleep(0.5)
                    first = {k: first[k] for k in ("score", "threshold", "status", "generated_at")}
                assert set(first) == {"score", "threshold", "status", "generated_at"}
                assert 0 <= first["score"] <= 100 and first["threshold"] == 80
                # Unchanged health publishes nothing more: two health intervals of silence.
                try:
                    _, again = await asyncio.wait_for(events.recv(), 1.5)
                    raise AssertionError(f"published again without a change: {again}")
                except TimeoutError:
                    pass
                config = data_dir / "strongroom.toml"
                config.write_text("compliance_threshold = 100\n" + config.read_text())
                daemon.proc.send_signal(signal.SIGHUP)
                topic, moved = await asyncio.wait_for(events.recv(), 20)
                assert moved["threshold"] == 100 and moved["status"] == "below threshold"
            finally:
                events.close()
                client.close()
        asyncio.run(watch())
