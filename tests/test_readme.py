"""The README is executable: every command line in its ```sh blocks runs, in order.

A newcomer copies README.md's command lines one by one into a terminal at the top of
the checkout. This test does the same in a scratch directory holding a `.venv` link to
the installed environment, so each line runs exactly as written (`.venv/bin/strongroom
--data-dir .demo ...`): nothing is rewritten but the placeholders below. Each line runs
in a pseudo-terminal, as it would for a person, with a timeout; it fails the test,
naming its README line, when it exits non-zero or prints an error line (`strongroom:
error:`, click's `Error:`) or a traceback.

A line's trailing comment may start with a marker (README.md shows them as they are):

  [exits N]        the line is meant to fail: it must exit with N and say why in one
                   `strongroom: error:` line (the refusal is the point of the example).
  [keeps running]  a foreground process (the daemon): started in the background, and
                   the next line runs once `strongroom status` answers; it is stopped
                   with SIGTERM at the end and must exit 0, as the README says.

What else the test supplies, each in one small table below:

- MAKE: `make demo` is run as its recipe runs it, minus the install (done already) and
  the console (no terminal here: scripts/demo.sh then says so and stops its daemon).
  The one change to the demo: its metrics endpoint takes a free port, so the test does
  not collide with a daemon already on 9464 (a developer's own `make demo`, a parallel
  test). `make test` is the suite this test belongs to and is not run from here.
- PLACEHOLDERS: SNAPSHOT, CLIENT, HOLD, REQUEST and CONFLICT are filled, just before
  the line runs, from the `--json` output of the listing a person would read them from.
- Prompts are answered as a person would: the demo admin's password and a current TOTP
  code from `.demo/demo-credentials.txt`, "y" to a confirmation, and nothing for the
  TOTP code of a second person the README adds (its password comes from a file).
- KNOWN_BUGS: README lines that fail today because of a product bug, each with why;
  they must still fail (so the entry goes when the bug is fixed). Empty is the goal.

Token files go to a scratch $HOME, so `login` never touches the real user's sessions.
"""
from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DEMO = ".demo"
STRONGROOM = ".venv/bin/strongroom"
TIMEOUT = 120.0  # seconds per line; the slowest today (backup drill) takes a few

# `make` lines: True runs it (Newcomer.make_demo); False does not.
MAKE = {
    "make demo": True,
    "make test": False,  # the suite this test is part of
}

# placeholder -> (the listing a person reads it from, which row); REQUEST's listing
# depends on the line's command group.
PLACEHOLDERS = {
    "SNAPSHOT": (["backup", "list", "--json"], lambda rows: rows[-1]["snapshot_id"]),  # newest
    "CLIENT": (["clients", "list", "--json"], lambda rows: rows[-1]["id"]),      # last on page one
    "HOLD": (["hold", "list", "--json"], lambda rows: rows[0]["id"]),            # newest in force
    "CONFLICT": (["sync", "conflicts", "--json"], lambda rows: rows[0]["id"]),   # oldest open
    "REQUEST backup": (["backup", "requests", "--json"], lambda rows: rows[0]["id"]),  # newest
    "REQUEST erasure": (["erasure", "list", "--all", "--json"], lambda rows: rows[0]["id"]),  # newest
}
_PLACEHOLDER = re.compile(r"\b(SNAPSHOT|CLIENT|HOLD|CONFLICT|REQUEST)\b")

# README line text (as written, comment excluded) -> why it fails today.
KNOWN_BUGS: dict[str, str] = {}

_MARKER = re.compile(r"^\[(exits (?P<code>\d+)|keeps running)\]")
# Our one-line errors, click's usage errors, and what neither should ever be.
_ERROR = re.compile(r"^(strongroom: error|Error): |Traceback \(most recent call last\)", re.MULTILINE)


@dataclass
class Line:
    number: int          # in README.md
    command: str         # what runs (continuations joined), without the comment
    exits: int = 0
    keeps_running: bool = False

    def where(self) -> str:
        return f"README.md:{self.number}: {self.command}"


def split_comment(text: str) -> tuple[str, str]:
    """The command and its trailing `# comment` (a # outside quotes after a blank)."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i + 1:].strip()
    return text.rstrip(), ""


def readme_lines(text: str) -> list[Line]:
    """Every command line of the ```sh blocks, in order, with its marker."""
    lines: list[Line] = []
    in_block = False
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.startswith("```"):
            in_block = raw.strip() == "```sh" if not in_block else False
            continue
        if not in_block:
            continue
        if pending is not None:
            start, so_far = pending
            raw, number = so_far + " " + raw.strip(), start
            pending = None
        command, comment = split_comment(raw)
        if command.endswith("\\"):
            pending = (number, command[:-1].rstrip())
            continue
        if not command:
            continue
        line = Line(number, command.strip())
        marker = _MARKER.match(comment)
        if marker:
            line.exits = int(marker["code"]) if marker["code"] else 0
            line.keeps_running = marker["code"] is None
        lines.append(line)
    assert pending is None, "README.md ends a ```sh block inside a continued line"
    return lines


class Newcomer:
    """A checkout-shaped scratch directory and a person typing README lines into it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / ".venv").symlink_to(Path(sys.prefix))
        home = root / "home"
        home.mkdir()
        # Nothing of the caller's Strongroom or systemd setting leaks into the lines.
        ours = ("STRONGROOM_", "NOTIFY_SOCKET", "WATCHDOG_", "RUNTIME_DIRECTORY")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        self.env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), TERM="xterm")
        self.daemon: subprocess.Popen | None = None
        self.last_totp_step = -1

    # --- running lines ------------------------------------------------------------------

    def run(self, command: str, *, timeout: float = TIMEOUT) -> tuple[int, str]:
        """Run one line in a pseudo-terminal, answering its prompts; (exit code, output)."""
        pid, fd = pty.fork()
        if pid == 0:  # the child: become the line
            try:
                os.chdir(self.root)
                os.execve("/bin/bash", ["bash", "-c", command], self.env)
            finally:
                os._exit(127)
        output, unanswered = bytearray(), ""
        deadline = time.monotonic() + timeout
        status = None
        try:
            while True:
                if time.monotonic() > deadline:
                    text = output.decode(errors="replace")
                    raise TimeoutError(f"still running after {timeout:.0f}s; output:\n{text}")
                ready, _, _ = select.select([fd], [], [], 0.2)
                if not ready:
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the line has finished and closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                unanswered += chunk.decode(errors="replace")
                answer = self.answer(command, unanswered)
                if answer is not None:
                    os.write(fd, answer.encode() + b"\r")
                    unanswered = ""
            # Reap before closing the terminal: closing it first hangs up (SIGHUP) a line
            # that has closed its end but not yet exited.
            _, status = os.waitpid(pid, 0)
        finally:
            if status is None:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            os.close(fd)
        text = output.decode(errors="replace").replace("\r\n", "\n")
        return os.waitstatus_to_exitcode(status), text

    def answer(self, command: str, shown: str) -> str | None:
        """What a person types at the prompt the line is showing, if it shows one."""
        if shown.rstrip().endswith("[y/N]:"):
            return "y"
        if re.search(r"\blogin\b", command):
            user = re.search(r"(?:-u|--username)[ =](\S+)", command)
            if user and "--password-file" in command and user[1] != self.credentials()["username"]:
                # A second person the README adds, password in a file and no second factor.
                return "" if shown.endswith("TOTP code (empty if none): ") else None
            assert user and user[1] == self.credentials()["username"], \
                f"{command}: only the demo admin's answers are known here"
            if shown.endswith("Password: "):
                return self.credentials()["password"]
            if shown.endswith("TOTP code (empty if none): "):
                return self.totp_code()
        return None

    def credentials(self) -> dict[str, str]:
        text = (self.root / DEMO / "demo-credentials.txt").read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def totp_code(self) -> str:
        """A current code that has not been used yet (the daemon refuses a replayed code,
        so a person logging in twice within 30 s waits for the next one, as we do)."""
        totp = pyotp.TOTP(self.credentials()["totp_secret"])
        while True:
            now = time.time()
            step = int(now) // totp.interval
            if step > self.last_totp_step and now % totp.interval < totp.interval - 1:
                break
            time.sleep(0.25)
        self.last_totp_step = step
        return totp.generate_otp(step)

    def strongroom(self, args: list[str], **env: str) -> tuple[int, str]:
        """`strongroom --data-dir .demo ARGS` run in this process, as this person (their
        token files, no terminal): the same commands as the lines, without a second of
        interpreter start-up for every id the test looks up. Returns stdout alone (a
        command acting with a saved session names it on stderr)."""
        from click.testing import CliRunner

        from strongroom.console.cli import cli

        scrubbed = {k: None for k in os.environ if k.startswith("STRONGROOM_")}
        person = {k: self.env[k] for k in ("HOME", "XDG_CONFIG_HOME")}
        result = CliRunner().invoke(cli, ["--data-dir", str(self.root / DEMO), *args],
                                    env={**scrubbed, **person, **env})
        return result.exit_code, result.stdout if result.exit_code == 0 else result.output

    def strongroom_json(self, args: list[str]):
        code, output = self.strongroom(args)
        assert code == 0, f"strongroom {' '.join(args)} exited {code}: {output}"
        return json.loads(output)

    def fill(self, line: Line) -> str:
        """The line with its placeholders replaced by ids read from their listings."""
        def value(match: re.Match) -> str:
            key = match[1]
            if key == "REQUEST":  # whose request: the line's command group says
                key += next((f" {g}" for g in ("backup", "erasure") if f" {g} " in line.command),
                            "")
            assert key in PLACEHOLDERS, f"{line.where()}: no listing for {key} in PLACEHOLDERS"
            args, pick = PLACEHOLDERS[key]
            rows = self.strongroom_json(args)
            assert rows, f"{line.where()}: no {key}: `strongroom {' '.join(args)}` is empty"
            return pick(rows)
        return _PLACEHOLDER.sub(value, line.command)

    # --- make demo, the daemon ----------------------------------------------------------

    def make_demo(self) -> None:
        """The `demo` recipe after its install step: scripts/demo.sh with BIN and DEMO.
        The data directory is created first exactly as the script would (so the metrics
        port can be freed before the script's daemon starts); the script then finds it."""
        init = self.batch([STRONGROOM, "--data-dir", DEMO, "init", "--demo",
                           "--practice-name", "Demo Practice"])  # as scripts/demo.sh runs it
        assert init.returncode == 0, init.stdout + init.stderr
        with open(self.root / DEMO / "strongroom.toml", "a") as config:
            config.write("\n[metrics]\nport = 0  # tests/test_readme.py: any free port\n")
        demo = self.batch([str(REPO / "scripts" / "demo.sh")], BIN=".venv/bin", DEMO=DEMO)
        output = demo.stdout + demo.stderr
        assert demo.returncode == 0, f"make demo exited {demo.returncode}:\n{output}"
        assert not _ERROR.search(output), f"make demo printed an error:\n{output}"
        assert "no terminal here" in output, output

    def batch(self, argv: list[str], **env: str) -> subprocess.CompletedProcess:
        """Run without a terminal (stdin empty, output captured)."""
        return subprocess.run(argv, cwd=self.root, env={**self.env, **env},
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=TIMEOUT)

    def start(self, line: Line) -> None:
        assert self.daemon is None, f"{line.where()}: a second process that keeps running"
        log = open(self.root / "foreground.log", "wb")
        self.daemon = subprocess.Popen(["bash", "-c", "exec " + line.command], cwd=self.root,
                                       env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            code = self.daemon.poll()
            assert code is None, f"{line.where()} exited {code}:\n{self.log()}"
            if self.strongroom(["status"], STRONGROOM_TIMEOUT="1")[0] == 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"{line.where()}: no answer to `status` within 30s:\n{self.log()}")

    def log(self) -> str:
        return (self.root / "foreground.log").read_text(errors="replace")

    def stop(self) -> int | None:
        if self.daemon is None:
            return None
        if self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(60)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        return self.daemon.returncode


def test_readme_parser_splits_comments_outside_quotes_and_reads_markers():
    """The parser sees what the README means: comments split off outside quotes only,
    continuations joined, markers read."""
    text = ("```sh\n"
            "a --reason \"# not a comment\" \\\n"
            "    --more   # [exits 4] refused\n"
            "# a note\n"
            "b   # [keeps running] the daemon\n"
            "```\n"
            "```\nnot a shell block\n```\n")
    lines = readme_lines(text)
    assert [(l.number, l.command, l.exits, l.keeps_running) for l in lines] == [
        (2, 'a --reason "# not a comment" --more', 4, False), (5, "b", 0, True)]


def check(line: Line, code: int, output: str) -> None:
    """The line did what the README says: exit 0 and no error line, or exactly the exit
    code of its `[exits N]` marker with the one-line reason; never a traceback."""
    assert "Traceback (most recent call last)" not in output, f"{line.where()}\n{output}"
    assert code == line.exits, \
        f"{line.where()} exited {code}, the README says {line.exits}:\n{output}"
    if line.exits:
        assert re.search(r"^(strongroom: error|Error): ", output, re.MULTILINE), \
            f"{line.where()} failed without saying why:\n{output}"
    else:
        assert not _ERROR.search(output), f"{line.where()} printed an error:\n{output}"


@pytest.mark.slow
def test_every_readme_command_works_in_order():
    """Copy every README command line in order onto a fresh demo: each one works (or
    fails exactly as its `[exits N]` marker says)."""
    if not (Path(sys.prefix) / "bin" / "strongroom").exists():
        pytest.skip("the strongroom scripts are not installed in this interpreter's environment")
    lines = readme_lines(README.read_text())
    assert any(line.command == "make demo" for line in lines), "README.md lost `make demo`"
    seen_bugs: set[str] = set()
    # A short path: the daemon's socket path must fit in 107 bytes.
    with tempfile.TemporaryDirectory(prefix="sr-readme-") as scratch:
        person = Newcomer(Path(scratch))
        try:
            for line in lines:
                if line.command in MAKE:
                    if MAKE[line.command]:
                        person.make_demo()
                elif line.keeps_running:
                    person.start(line)
                else:
                    try:
                        code, output = person.run(person.fill(line))
                    except TimeoutError as exc:
                        pytest.fail(f"{line.where()}: {exc}")
                    if line.command in KNOWN_BUGS:
                        seen_bugs.add(line.command)
                        assert code != 0, f"{line.where()} works now: take it out of KNOWN_BUGS"
                    else:
                        check(line, code, output)
        finally:
            stopped = person.stop()
        if stopped is not None:
            assert stopped == 0, f"the daemon exited {stopped} on SIGTERM:\n{person.log()}"
            assert "Traceback" not in person.log(), person.log()
    gone = set(KNOWN_BUGS) - seen_bugs
    assert not gone, f"KNOWN_BUGS names lines README.md no longer has: {gone}"
