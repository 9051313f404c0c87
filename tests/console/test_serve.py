"""`strongroom console --serve`: the console for web browsers, loopback by default and
TLS-only anywhere else; a real server process answering real HTTP(S) requests."""
from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.console.cli_helpers import run_cli as run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _self_signed(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def _get(url: str, context=None, deadline: float = 20.0) -> str:
    """The page at `url`, waiting for the server to come up."""
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3, context=context) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def _start(tmp_path, *args) -> subprocess.Popen:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    return subprocess.Popen([sys.executable, "-m", "strongroom.console.cli", "--data-dir", str(tmp_path / "d"),
                             "console", "--serve", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the server did not stop on SIGTERM")


@pytest.mark.parametrize("args, message", [
    (["--bind", "0.0.0.0:8123"], "a non-loopback address needs --tls-cert and --tls-key"),
    (["--bind", "192.0.2.7:8123"], "a non-loopback address needs --tls-cert and --tls-key"),
    (["--bind", "example.org:8123"], "a non-loopback address needs --tls-cert and --tls-key"),
    (["--bind", "nonsense"], "--bind: expected ADDR:PORT"),
    (["--token-from-operator"], "--serve logs every browser session in at the login screen"),
    (["--public-url", "javascript:x"], "--public-url: expected http(s)://HOST[:PORT]"),
])
def test_serve_refuses_plaintext_off_loopback_and_bad_options_by_name(args, message, capsys, tmp_path):
    code, _, err = run(capsys, "console", "--serve", *args)
    assert code == 2 and message in err, err


def test_serve_options_without_serve_are_refused(capsys):
    code, _, err = run(capsys, "console", "--bind", "127.0.0.1:8000")
    assert code == 2 and "go with --serve" in err


def test_serve_answers_on_loopback_with_the_console_page(tmp_path):
    port = _free_port()
    proc = _start(tmp_path, "--bind", f"127.0.0.1:{port}")
    try:
        page = _get(f"http://127.0.0.1:{port}/")
        assert f"ws://127.0.0.1:{port}/ws" in page and "Strongroom" in page
    finally:
        _stop(proc)


def test_serve_with_tls_answers_https_and_refuses_plaintext(tmp_path):
    cert, key = _self_signed(tmp_path)
    port = _free_port()
    proc = _start(tmp_path, "--bind", f"127.0.0.1:{port}", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        page = _get(f"https://127.0.0.1:{port}/", context=ssl.create_default_context(cafile=str(cert)))
        assert f"wss://127.0.0.1:{port}/ws" in page
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3).read()
    finally:
        _stop(proc)


def test_a_key_that_does_not_match_the_certificate_is_refused(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert, _ = _self_signed(tmp_path / "a")
    _, other_key = _self_signed(tmp_path / "b")
    code, _, err = run(capsys, "console", "--serve", "--tls-cert", cert, "--tls-key", other_key)
    assert code == 2 and "cannot load the certificate and key" in err
