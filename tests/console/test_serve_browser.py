"""`strongroom console --serve` in a real browser: headless Chromium, driven over the
DevTools protocol, logs in with a password and TOTP code, switches to the Backups tab and
runs a backup; the daemon (a real subprocess) confirms each step, and a screenshot is kept.
In CI (CI set) Chromium must be there; elsewhere the test skips without it."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest

from tests.daemon.conftest import PASSWORD, data_transaction, make_data_dir, running_daemon

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("chromium is not installed (Debian package chromium; .ci/run installs it)",
                allow_module_level=True)

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port} after {deadline}s")


class DevTools:
    """The DevTools protocol on one page target, over aiohttp's websocket client."""

    def __init__(self, ws) -> None:
        self.ws, self.ids = ws, iter(range(1, 1_000_000))

    async def send(self, method: str, **params):
        request_id = next(self.ids)
        await self.ws.send_json({"id": request_id, "method": method, "params": params})
        while True:
            message = json.loads((await self.ws.receive(timeout=30)).data)
            if message.get("id") == request_id:
                assert "error" not in message, message
                return message.get("result", {})

    async def type(self, text: str) -> None:
        for char in text:
            await self.send("Input.insertText", text=char)

    async def key(self, key: str, code: int) -> None:
        """A key press; the pauses let the typed text reach the console before it (the
        terminal page forwards keys and text on separate paths)."""
        await asyncio.sleep(0.7)
        text = {"Enter": "\r", "Tab": "\t"}.get(key, "")
        for kind in ("keyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", type=kind, key=key, code=key, windowsVirtualKeyCode=code,
                            **({"text": text} if kind == "keyDown" and text else {}))
        await asyncio.sleep(0.7)


async def _poll(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def admin_daemon(tmp_path, db_url):
    from strongroom.core.auth.users import create_user
    from strongroom.core.db.models import Role
    from strongroom.core.repository.practices import only_practice

    data_dir = make_data_dir(tmp_path, db_url)
    with data_transaction(data_dir) as (ctx, conn):
        _, enrolment = create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "webadmin", PASSWORD,
                                   Role.OP_ADMIN, actor="test")
    with running_daemon(data_dir, tmp_path) as proc:
        yield data_dir, proc, enrolment.secret


@pytest.mark.slow
def test_a_browser_logs_in_switches_tabs_and_runs_a_backup(admin_daemon, tmp_path):
    from strongroom.console.screens.main import MainScreen, TAB_KEYS, TABS

    data_dir, proc, secret = admin_daemon
    backups_key = TAB_KEYS[[tab_id for _, tab_id, _ in TABS].index("backups")]
    port = _free_port()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "RUNTIME_DIRECTORY": str(proc.runtime)}
    server = subprocess.Popen([sys.executable, "-m", "strongroom.console.cli", "--data-dir", str(data_dir),
                               "console", "--serve", "--bind", f"127.0.0.1:{port}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    profile = tmp_path / "chromium"
    browser = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                f"--user-data-dir={profile}", "--remote-debugging-port=0", "--window-size=1280,800",
                                "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        asyncio.run(asyncio.wait_for(_drive(proc, profile, port, secret, backups_key, tmp_path), 60))
    finally:
        for p in (browser, server):
            p.send_signal(signal.SIGTERM)
        for p in (browser, server):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    assert MainScreen  # the tab keys above are the console's own bindings


async def _drive(proc, profile: Path, port: int, secret: str, backups_key: str, tmp_path: Path) -> None:
    import aiohttp

    active = profile / "DevToolsActivePort"
    await _poll(lambda: active.exists() and active.read_text().strip(), 20, "chromium's DevTools port")
    devtools_port = int(active.read_text().split()[0])
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{devtools_port}/json/list") as response:
            page = next(t for t in await response.json() if t["type"] == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = DevTools(ws)
            await cdp.send("Page.enable")
            await cdp.send("Page.navigate", url=f"http://127.0.0.1:{port}/")

            async def textarea() -> bool:
                result = await cdp.send("Runtime.evaluate", expression="!!document.querySelector('textarea')")
                return result["result"].get("value") is True
            end = time.monotonic() + 20
            while not await textarea():
                assert time.monotonic() < end, "the console page never showed its terminal"
                await asyncio.sleep(0.3)
            await cdp.send("Runtime.evaluate", expression="document.querySelector('textarea').focus()")
            await asyncio.sleep(4)                    # the session's console starts and draws its login
            await cdp.type("webadmin")
            await cdp.key("Enter", 13)                # to the password field
            await cdp.type(PASSWORD)
            await cdp.key("Tab", 9)                   # to the TOTP field
            await cdp.type(pyotp.TOTP(secret).now())
            await cdp.key("Enter", 13)

            def logged_in():
                return any(s.get("username") == "webadmin" for s in proc.call("session.list", {}))
            await _poll(logged_in, 20, "the browser's login session in the daemon")
            await asyncio.sleep(2)                    # the main screen loads
            await cdp.type(backups_key)
            await asyncio.sleep(1)
            await cdp.type("b")
            await asyncio.sleep(1)
            await cdp.type("y")                       # confirm
            await asyncio.sleep(2)
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "console-serve-confirmed.png").write_bytes(base64.b64decode(
                (await cdp.send("Page.captureScreenshot", format="png"))["data"]))

            def backed_up():
                jobs = proc.call("job.list", {"kind": "backup", "limit": 5})
                return [j for j in jobs if j["status"] == "succeeded"]
            (job, *_) = await _poll(backed_up, 30, "the backup the browser started to succeed")
            await asyncio.sleep(1)
            shot = await cdp.send("Page.captureScreenshot", format="png")
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "console-serve-backup.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}")
    assert path.stat().st_size > 10_000 and job["job_kind"] == "backup"
