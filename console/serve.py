"""`strongroom console --serve`: the same console in a browser, through textual-serve.

Each browser session runs its own `strongroom console` process, which opens on the
console's login screen (password + TOTP), so a browser user logs in, and is audited,
exactly like a terminal user; nothing here holds a token. The server binds to loopback
by default. On any other address it refuses to start without a TLS certificate and key:
the page carries the login's password and code, and then PHI.
"""
from __future__ import annotations

import ipaddress
import re
import shlex
import ssl
import sys
from pathlib import Path

import click

DEFAULT_BIND = "127.0.0.1:8000"


def parse_bind(value: str) -> tuple[str, int]:
    """ADDR:PORT (ADDR an IP address, [IPv6] or a host name) as (host, port)."""
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})", value.strip())
    if not match or not 0 < int(match.group(2)) < 65536:
        raise click.UsageError("--bind: expected ADDR:PORT, e.g. 127.0.0.1:8000")
    return match.group(1).strip("[]"), int(match.group(2))


def is_loopback(host: str) -> bool:
    """Only this machine can reach `host`: localhost or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False                       # a name: it may resolve anywhere


def tls_context(cert: Path | None, key: Path | None, host: str) -> ssl.SSLContext | None:
    """The server's TLS context, or None for plaintext, which only loopback may have."""
    if (cert is None) != (key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if cert is None:
        if not is_loopback(host):
            raise click.UsageError("--bind: a non-loopback address needs --tls-cert and --tls-key "
                                   "(plaintext is served on loopback only)")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError):
        raise click.UsageError("--tls-cert/--tls-key: cannot load the certificate and key (PEM, matching "
                               "pair, readable by this user)") from None
    return context


def console_command(global_args: list[str]) -> str:
    """The shell command each browser session runs: this Python's `strongroom console`
    with the same global options, and never a token flag (the login screen comes first)."""
    return shlex.join([sys.executable, "-m", "strongroom.console.cli", *global_args, "console"])


def serve(command: str, host: str, port: int, context: ssl.SSLContext | None, public_url: str | None) -> None:
    """Serve `command` on host:port until SIGINT/SIGTERM (TLS when `context` is given)."""
    from aiohttp import web
    from textual_serve.server import Server

    scheme = "https" if context is not None else "http"
    url = public_url or f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"

    class ConsoleServer(Server):
        """textual-serve's server, run with our TLS context (its own serve() has none)."""

        def serve(self, debug: bool = False) -> None:
            import asyncio
            import signal

            self.debug = debug
            self.initialize_logging()
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.add_signal_handler(signal.SIGINT, self.request_exit)
            loop.add_signal_handler(signal.SIGTERM, self.request_exit)
            web.run_app(self._make_app(), host=host, port=port, ssl_context=context, handle_signals=False,
                        loop=loop, print=lambda *args: None)

    ConsoleServer(command, host=host, port=port, title="Strongroom", public_url=url).serve()
