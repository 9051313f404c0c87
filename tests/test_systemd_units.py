"""systemd/strongroomd.service and friends: required directives, and the sandbox exposure score.

`systemd-analyze verify` is not run: it needs /opt/strongroom/.venv/bin/strongroomd to exist.
`systemd-analyze security --offline=true` works on a unit file path (systemd >= 250) and is run
when systemd-analyze is installed.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYSTEMD = ROOT / "systemd"
UNIT = SYSTEMD / "strongroomd.service"
MAX_EXPOSURE = 2.0


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value in order (systemd allows repeated keys)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT)["Service"]


def one(service: dict[str, list[str]], key: str) -> str:
    assert key in service, f"{key}= missing"
    return service[key][-1]


REQUIRED = {
    "Type": "notify",
    "NotifyAccess": "main",
    "ExecStart": "/opt/strongroom/.venv/bin/strongroomd --config /etc/strongroom/strongroom.toml",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "WatchdogSec": "30s",
    "LimitNOFILE": "16384",          # client file chunks held open until synced together
    "Restart": "on-failure",
    "TimeoutStopSec": "90s",
    "KillMode": "mixed",
    "User": "strongroom",
    "Group": "strongroom",
    "StateDirectory": "strongroom",
    "StateDirectoryMode": "0700",
    "RuntimeDirectory": "strongroom",
    "RuntimeDirectoryMode": "0750",
    "LogsDirectory": "strongroom",
    "UMask": "0077",
    "LoadCredential": "strongroom-kek:/etc/strongroom/kek.key",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "PrivateUsers": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "ProcSubset": "pid",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "DevicePolicy": "closed",
    "RemoveIPC": "yes",
    "KeyringMode": "private",
}


@pytest.mark.parametrize("key,value", sorted(REQUIRED.items()))
def test_required_directive(service, key, value):
    assert one(service, key) == value


def test_address_families(service):
    assert set(one(service, "RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}


def test_syscall_filter(service):
    filters = service["SystemCallFilter"]
    assert filters[0] == "@system-service", "the first SystemCallFilter= must be the allow list"
    denied = {w.lstrip("~") for f in filters if f.startswith("~") for w in f.split()}
    assert {"@privileged", "@resources"} <= denied
    # Anything re-allowed after the deny line must be a single, commented exception.
    readded = [f for f in filters[1:] if not f.startswith("~")]
    assert readded == ["sched_setscheduler"], readded


def test_no_ip_address_policy_and_no_extra_writable_paths(service):
    assert "IPAddressDeny" not in service and "IPAddressAllow" not in service
    assert all(v == "" for v in service.get("ReadWritePaths", []))


def test_header_documents_layout_exposure_and_mdwe():
    head = UNIT.read_text().split("[Unit]")[0]
    for needle in ("/opt/strongroom/.venv", "/etc/strongroom/kek.key", "Overall exposure level",
                   "MemoryDenyWriteExecute", "IPAddressAllow"):
        assert needle in head, needle


def test_sysusers_and_tmpfiles():
    sysusers = [l for l in (SYSTEMD / "strongroomd.sysusers").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    assert sysusers == ['u strongroom - "Strongroom daemon" /var/lib/strongroom']
    tmpfiles = [l.split() for l in (SYSTEMD / "strongroomd.tmpfiles").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    assert ["d", "/etc/strongroom", "0750", "root", "strongroom", "-"] in tmpfiles
    assert ["d", "/var/lib/strongroom", "0700", "strongroom", "strongroom", "-"] in tmpfiles


def _exposure(output: str) -> float:
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert m, "no 'Overall exposure level' line in:\n" + output
    return float(m.group(1))


def test_parse_exposure_line():
    assert _exposure("→ Overall exposure level for strongroomd.service: 1.2 OK 🙂") == 1.2


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (Debian package: systemd)")
def test_security_exposure_below_threshold():
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "SYSTEMD_COLORS": "0", "LC_ALL": "C.UTF-8"},
    )
    out = proc.stdout + proc.stderr
    if "--offline" in proc.stderr and ("unrecognized" in proc.stderr or "Unknown" in proc.stderr):
        pytest.skip("this systemd-analyze has no --offline (needs systemd >= 250)")
    assert proc.returncode == 0, out
    exposure = _exposure(out)
    assert exposure < MAX_EXPOSURE, out


def _seccomp_python() -> str | None:
    """A system python3 with the libseccomp binding (python3-seccomp), or None."""
    py = shutil.which("python3", path="/usr/bin:/bin")
    if py is None or shutil.which("systemd-analyze") is None:
        return None
    ok = subprocess.run([py, "-c", "import seccomp"], capture_output=True).returncode == 0
    return py if ok else None


@pytest.mark.skipif(_seccomp_python() is None,
                    reason="needs /usr/bin/python3 with python3-seccomp and systemd-analyze")
def test_native_libraries_run_under_the_units_seccomp_sandbox():
    """systemd/sandbox-check.py: SystemCallFilter=, RestrictRealtime=, MemoryDenyWriteExecute=."""
    import sys

    if os.geteuid() == 0 and shutil.which("unshare") is None:
        pytest.skip("running as root needs unshare(1) to drop to an unprivileged uid")
    proc = subprocess.run(
        [_seccomp_python(), str(SYSTEMD / "sandbox-check.py"), sys.executable],
        capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    if os.geteuid() == 0 and "unshare failed" in out:
        pytest.skip("user namespaces are not available here: " + out.strip().splitlines()[-1])
    assert proc.returncode == 0 and "sandbox-check: ok" in proc.stdout, (
        f"exit {proc.returncode} (159 = killed by SIGSYS: a syscall the unit forbids; "
        f"strace -f /usr/bin/python3 systemd/sandbox-check.py shows which)\n{out}"
    )


# --- strongroom-console-web.service: the console for browsers ----------------------------

WEB_UNIT = SYSTEMD / "strongroom-console-web.service"
DAEMON_ONLY = {"Type", "NotifyAccess", "ExecStart", "ExecReload", "WatchdogSec", "TimeoutStopSec", "KillMode",
               "LimitNOFILE", "StateDirectory", "StateDirectoryMode", "RuntimeDirectory", "RuntimeDirectoryMode",
               "LogsDirectory", "LoadCredential"}


@pytest.fixture(scope="module")
def web() -> dict[str, dict[str, list[str]]]:
    return parse_unit(WEB_UNIT)


@pytest.mark.parametrize("key,value", sorted((k, v) for k, v in REQUIRED.items() if k not in DAEMON_ONLY))
def test_web_unit_has_the_daemons_hardening(web, key, value):
    assert one(web["Service"], key) == value


def test_web_unit_serves_on_loopback_after_the_daemon_and_writes_nothing(web):
    service = web["Service"]
    argv = one(service, "ExecStart").split()
    assert argv[0] == "/opt/strongroom/.venv/bin/strongroom" and argv[3:6] == ["console", "--serve", "--bind"]
    assert argv[6].startswith("127.0.0.1:")
    assert not {"--token-from-operator", "--demo-admin"} & set(argv)
    assert "strongroomd.service" in one(web["Unit"], "Requires")
    assert "strongroomd.service" in one(web["Unit"], "After")
    assert set(one(service, "RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert service["SystemCallFilter"][0] == "@system-service"
    assert all(v == "" for v in service.get("ReadWritePaths", []))
    assert not {"StateDirectory", "RuntimeDirectory", "LoadCredential"} & set(service)


def test_web_unit_exec_start_parses_as_a_console_serve_command():
    """The unit's `console` options are ones the CLI has, and combine."""
    from strongroom.console.cli import cli

    argv = one(parse_unit(WEB_UNIT)["Service"], "ExecStart").split()
    assert argv[1:3] == ["--config", "/etc/strongroom/strongroom.toml"]
    with cli.make_context("strongroom", argv[1:3] + ["console"]) as ctx:
        console = cli.get_command(ctx, "console")
        with console.make_context("console", argv[4:], parent=ctx) as sub:
            assert sub.params["serve"] and sub.params["bind"] == argv[-1]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (Debian package: systemd)")
def test_web_unit_security_exposure_below_threshold():
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(WEB_UNIT)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "SYSTEMD_COLORS": "0", "LC_ALL": "C.UTF-8"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert _exposure(out) < MAX_EXPOSURE, out
