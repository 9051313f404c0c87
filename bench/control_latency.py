"""Benchmark: control round-trip latency and throughput of strongroomd (issue 4).

    .venv/bin/python bench/control_latency.py [--requests 3000] [--soak-seconds 600] [--clients 20000] [--pg DSN]

Starts a real daemon on a fresh data directory (SQLite by default) with the ipc socket
and a CURVE-encrypted TCP endpoint, then measures `status` round trips:
  * p50/p99 on ipc and on CURVE tcp, idle;
  * the same while a long job (DEK rotation over --clients clients) runs;
  * requests/s with 20 concurrent clients;
  * the daemon's resident memory over a soak of continuous requests (first sample after
    a warm-up minute vs the last), target flat within 10%.
Targets: p99 < 5 ms idle, < 20 ms during a job.
--requests, --soak-seconds (0 skips the soak), --concurrent-seconds and --clients are the knobs that bound its
run time; --scale only names the result file. Writes
bench/results/control_latency-s<scale>.json/.md (bench/report.py's summary rows).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import zmq
import zmq.auth

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.daemon.conftest import PASSWORD, DaemonProcess, free_port_pair, make_data_dir  # noqa: E402
from bench.report import row, write_result  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Caller:
    def __init__(self, endpoint: str, token: str, curve: tuple | None = None) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 30000)
        if curve:
            self.sock.curve_serverkey, self.sock.curve_publickey, self.sock.curve_secretkey = curve
        self.sock.connect(endpoint)
        self.token = token
        self.n = 0

    def status(self) -> float:
        self.n += 1
        frame = json.dumps({"v": 1, "id": str(self.n), "cmd": "status", "token": self.token, "args": {}}).encode()
        start = time.perf_counter()
        self.sock.send(frame)
        reply = json.loads(self.sock.recv())
        elapsed = time.perf_counter() - start
        assert reply["ok"], reply
        return elapsed

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


def p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[max(0, int(len(ordered) * 0.99) - 1)]


def percentiles(samples: list[float]) -> str:
    p50, p99 = p50_p99(samples)
    return f"p50 {p50 * 1000:.2f} ms  p99 {p99 * 1000:.2f} ms  (n={len(samples)})"


def measure(caller: Caller, n: int) -> list[float]:
    for _ in range(50):
        caller.status()  # warm-up
    return [caller.status() for _ in range(n)]


def concurrent(endpoint: str, token: str, clients: int, seconds: float) -> float:
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        caller = Caller(endpoint, token)
        while time.monotonic() < stop:
            caller.status()
            counts[i] += 1
        caller.close()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=20000, help="clients whose keys the background job rotates")
    parser.add_argument("--soak-seconds", type=int, default=600)
    parser.add_argument("--pg", help="PostgreSQL DSN of a scratch database (default: SQLite)")
    parser.add_argument("--concurrent-seconds", type=float, default=10.0, help="length of the 20-client phase")
    parser.add_argument("--scale", type=float, default=1.0, help="only names the result file")
    args = parser.parse_args()
    summary, figures = [], {}

    def latency(task: str, samples: list[float], limit_ms: float) -> None:
        p50, p99 = p50_p99(samples)
        figures[task] = {"p50_ms": round(p50 * 1000, 3), "p99_ms": round(p99 * 1000, 3), "n": len(samples)}
        summary.append(row(f"status p99 {task}", p99, target=f"< {limit_ms:g} ms", met=p99 * 1000 < limit_ms))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        keys = tmp / "curve"
        (keys / "clients").mkdir(parents=True)
        server_public, server_secret = zmq.auth.create_certificates(str(keys), "server")
        client_public, client_secret = zmq.auth.create_certificates(str(keys / "clients"), "bench")
        port = free_port_pair()   # not a fixed port: under load another process held port + 1
        data_dir = make_data_dir(tmp, args.pg or "sqlite", extra=(
            f'\n[daemon]\ntcp_endpoint = "tcp://127.0.0.1:{port}"\ncurve_secret_key_file = "{server_secret}"\n'
            f'curve_allowed_clients_dir = "{keys / "clients"}"\n'))
        daemon = DaemonProcess(data_dir, tmp, name="bench")
        daemon.wait_ready()
        try:
            token = daemon.local_token()
            curve = (zmq.auth.load_certificate(str(server_public))[0],) + zmq.auth.load_certificate(str(client_secret))
            ipc = Caller(daemon.endpoint, token)
            # The local operator token is good only on the local socket; over TCP a session's is used.
            session = daemon.call("auth.login", {"username": "auditor1", "password": PASSWORD}, token=None)["token"]
            tcp = Caller(f"tcp://127.0.0.1:{port}", session, curve)
            idle_ipc, idle_tcp = measure(ipc, args.requests), measure(tcp, args.requests)
            print(f"idle      ipc        {percentiles(idle_ipc)}")
            print(f"idle      curve-tcp  {percentiles(idle_tcp)}")
            latency("idle ipc", idle_ipc, 5)
            latency("idle curve-tcp", idle_tcp, 5)
            rate = concurrent(daemon.endpoint, token, 20, args.concurrent_seconds)
            print(f"20 concurrent clients (ipc): {rate:,.0f} requests/s")
            figures["concurrent_requests_per_second"] = round(rate)
            summary.append(row("status, 20 concurrent clients (ipc)", None, ours=f"{rate:,.0f} req/s"))

            from strongroom.core.config import load_settings
            from strongroom.core.context import open_context
            from strongroom.core.db.engine import transaction
            from strongroom.core.demo import client_records
            from strongroom.core.principal import SYSTEM
            from strongroom.core.repository.clients import insert_clients
            from strongroom.core.repository.practices import only_practice
            ctx = open_context(load_settings(data_dir / "strongroom.toml"))
            with transaction(ctx.engine) as conn:
                insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), client_records(args.clients))
            ctx.close()
            run = daemon.call("job.run", {"kind": "key_rotation"})
            time.sleep(1.0)
            during_ipc, during_tcp = [], []
            while daemon.call("job.get", {"run_id": run["id"]})["status"] == "running" and len(during_ipc) < args.requests:
                during_ipc.append(ipc.status())
                during_tcp.append(tcp.status())
            if during_ipc:  # the job may finish before the first sample on a tiny run
                print(f"during job ipc        {percentiles(during_ipc)}")
                print(f"during job curve-tcp  {percentiles(during_tcp)}")
                latency("during job ipc", during_ipc, 20)
                latency("during job curve-tcp", during_tcp, 20)
            else:
                print(f"during job: the rotation of {args.clients} clients ended before the first sample "
                      "(raise --clients to measure it)")
            while daemon.call("job.get", {"run_id": run["id"]})["status"] == "running":
                time.sleep(0.5)

            if args.soak_seconds:
                samples = []
                start = time.monotonic()
                next_sample = start + 60 if args.soak_seconds > 120 else start + 5
                while time.monotonic() - start < args.soak_seconds:
                    ipc.status()
                    if time.monotonic() >= next_sample:
                        samples.append(rss_kib(daemon.proc.pid))
                        next_sample += 10
                if len(samples) >= 2:
                    growth = (samples[-1] - samples[0]) / samples[0] * 100
                    print(f"soak {args.soak_seconds}s: RSS {samples[0] / 1024:.1f} MiB -> {samples[-1] / 1024:.1f} MiB "
                          f"({growth:+.1f}%), max {max(samples) / 1024:.1f} MiB, {ipc.n:,} requests on this client")
                    figures["soak"] = {"seconds": args.soak_seconds, "rss_first_mib": round(samples[0] / 1024, 1),
                                       "rss_last_mib": round(samples[-1] / 1024, 1), "growth_percent": round(growth, 2)}
                    summary.append(row(f"daemon RSS over a {args.soak_seconds}s soak", None,
                                       ours=f"{growth:+.1f}%", target="within 10%", met=abs(growth) <= 10,
                                       peak_rss_mb=max(samples) / 1024))
            ipc.close()
            tcp.close()
            figures["daemon_rss_mib"] = round(rss_kib(daemon.proc.pid) / 1024, 1)
        finally:
            daemon.stop()
    for r in summary:  # the daemon's resident memory at the end stands for every row without its own
        if r["peak_rss_mb"] is None:
            r["peak_rss_mb"] = figures["daemon_rss_mib"]
    write_result("control_latency", args.scale, {"benchmark": "control_latency", "requests": args.requests,
                                                 "clients": args.clients, "figures": figures}, summary)


if __name__ == "__main__":
    main()
