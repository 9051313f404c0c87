"""The control socket answers a bounded number of requests at once: past the budget of
requests or of the bytes their frames hold, it stops reading, so a client pipelining
large frames without reading its replies cannot make the daemon hold one frame per
message sent. Nothing is dropped: what waits is answered once room is made."""
from __future__ import annotations

import asyncio
import json

import zmq
import zmq.asyncio

from strongroom.daemon.control import IN_FLIGHT_BYTES, IN_FLIGHT_REQUESTS, ControlServer, InFlight

MIB = 1024 * 1024


def serve_slowly(tmp_path, in_flight: InFlight, messages: list[list[bytes]]) -> tuple[list[bytes], int]:
    """Send `messages` at once to a ControlServer's request loop whose answers wait until
    every message has been sent (or the loop stopped reading); return the replies, in
    order, and how many answers were running when they were let go."""
    async def go():
        zctx = zmq.asyncio.Context()
        router, dealer = zctx.socket(zmq.ROUTER), zctx.socket(zmq.DEALER)
        endpoint = f"ipc://{tmp_path}/in-flight.sock"
        router.bind(endpoint)
        dealer.connect(endpoint)
        release = asyncio.Event()
        running = 0

        async def answer(sock, frames, ipc):
            nonlocal running
            running += 1
            await release.wait()
            await sock.send_multipart([frames[0].bytes, frames[1].bytes])

        server = ControlServer.__new__(ControlServer)
        server._tasks = set()
        server._answer = answer
        serving = asyncio.create_task(server._serve(router, ipc=True, in_flight=in_flight))
        for message in messages:
            await dealer.send_multipart(message)
        for _ in range(50):                       # until the loop has read all it will
            await asyncio.sleep(0.02)
        held = running
        release.set()
        replies = [(await asyncio.wait_for(dealer.recv_multipart(), 10))[0] for _ in messages]
        serving.cancel()
        router.close(0)
        dealer.close(0)
        zctx.term()
        return replies, held
    return asyncio.run(asyncio.wait_for(go(), 60))


def test_past_the_request_budget_the_socket_is_not_read_and_nothing_is_dropped(tmp_path):
    in_flight = InFlight(requests=5, size=IN_FLIGHT_BYTES)
    messages = [[str(n).encode(), b"x"] for n in range(50)]
    replies, held = serve_slowly(tmp_path, in_flight, messages)
    assert held == 5 and in_flight.peak_requests == 5
    assert replies == [str(n).encode() for n in range(50)]     # every one answered, in order
    assert in_flight.requests == 0 and in_flight.bytes == 0


def test_past_the_byte_budget_the_socket_is_not_read(tmp_path):
    in_flight = InFlight(requests=100, size=4 * MIB)
    messages = [[str(n).encode(), b"c" * MIB] for n in range(20)]
    replies, held = serve_slowly(tmp_path, in_flight, messages)
    assert held == 4 and 4 * MIB <= in_flight.peak_bytes < 5 * MIB
    assert replies == [str(n).encode() for n in range(20)]


def test_one_request_larger_than_the_byte_budget_still_gets_in(tmp_path):
    in_flight = InFlight(requests=10, size=MIB)
    replies, held = serve_slowly(tmp_path, in_flight, [[b"big", b"c" * 3 * MIB], [b"next", b"x"]])
    assert held == 1 and replies == [b"big", b"next"]


def test_the_daemons_budget_holds_a_few_full_size_file_pieces():
    """A file piece is at most the frame limit (4 MiB by default): sixteen of them may be
    in flight at once, and many more small requests."""
    assert IN_FLIGHT_BYTES // (4 * MIB) == 16 and IN_FLIGHT_REQUESTS == 64


def test_a_daemon_answers_every_one_of_many_pipelined_large_requests(daemon):
    """Through a real daemon: 200 requests with a 1 MiB binary frame each (to a command
    that takes none: each is refused), all sent before any reply is read. The daemon
    reads them a budget at a time; each gets its answer, and the daemon serves on."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 30_000)
    sock.setsockopt(zmq.SNDTIMEO, 30_000)
    sock.connect(daemon.endpoint)
    try:
        for n in range(200):
            frame = json.dumps({"v": 1, "id": f"r{n}", "cmd": "status", "token": None, "args": {}}).encode()
            sock.send_multipart([frame, b"c" * MIB])
        replies = [json.loads(sock.recv()) for _ in range(200)]
    finally:
        sock.close()
        ctx.term()
    assert sorted(r["id"] for r in replies) == sorted(f"r{n}" for n in range(200))
    assert all(r["ok"] is False and r["error"]["code"] == "bad_request" for r in replies)
    assert daemon.call("status")["role"]
