"""etc/prometheus: the scrape config and alert rules are valid, fire when they should, and use
only metric names strongroomd exports.

The promtool tests skip when promtool is not on PATH (Debian package: prometheus).
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import CONFIG, JOB_STATUSES, METRICS, PROM, RULES, RULES_TEST, exported_series_names, rule_exprs

PROMETHEUS_OWN = {"up"}
RUNBOOK = PROM / "strongroom-runbook.md"

EXPECTED_ALERTS = {
    "StrongroomBackupTooOld",
    "StrongroomNeverBackedUp",
    "StrongroomJobFailing",
    "StrongroomAuditChainBroken",
    "StrongroomComplianceBelowThreshold",
    "StrongroomMissedRuns",
    "StrongroomDaemonDown",
    "StrongroomLoginFailuresSpike",
    "StrongroomSyncConflictsOpen",
}


PROMQL_WORDS = {
    "and", "or", "unless", "on", "ignoring", "by", "without", "group_left", "group_right",
    "time", "absent", "increase", "rate", "sum", "max", "min", "count", "avg", "offset", "bool",
    "humanize", "humanizeDuration",
}


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(on|ignoring|by|without|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr))
    return {w for w in words if w not in PROMQL_WORDS}


def test_every_alert_present():
    assert set(rule_exprs()) == EXPECTED_ALERTS


def test_alerts_use_only_exported_metrics():
    allowed = exported_series_names() | PROMETHEUS_OWN
    for name, expr in rule_exprs().items():
        unknown = metric_names(expr) - allowed
        assert not unknown, f"{name} uses metrics strongroomd does not export: {sorted(unknown)}"


def test_metric_names_follow_conventions():
    for name, (kind, _labels) in METRICS.items():
        assert name.startswith("strongroom_"), name
        assert (kind == "counter") == name.endswith("_total"), name


def test_status_label_values_are_known():
    statuses = set(re.findall(r'status="([^"]+)"', RULES.read_text()))
    assert statuses <= set(JOB_STATUSES)


def test_every_alert_has_severity_and_annotations():
    blocks = re.split(r"\n\s*- alert: ", RULES.read_text())[1:]
    assert len(blocks) == len(EXPECTED_ALERTS)
    for block in blocks:
        name = block.split("\n", 1)[0]
        assert re.search(r"severity: (critical|warning|info)\b", block), name
        for key in ("summary:", "description:", "runbook_url:"):
            assert key in block, f"{name}: no {key}"


def test_no_rule_reads_or_prints_a_job_label_other_than_the_scrape_job():
    # Prometheus overwrites a scraped `job` label with the scrape job's name, so
    # {{ $labels.job }} is always "strongroom"; job kinds travel as `kind`.
    text = RULES.read_text()
    assert "$labels.job" not in text
    assert set(re.findall(r'\bjob="([^"]*)"', text)) <= {"strongroom"}


def test_every_runbook_url_points_at_a_section_of_the_runbook():
    anchors = {re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")
               for title in re.findall(r"^## (.+)$", RUNBOOK.read_text(), re.M)}
    urls = dict(re.findall(r"\n\s*- alert: (\w+).*?runbook_url: '?([^'\n]+)", RULES.read_text(), re.S))
    assert set(urls) == EXPECTED_ALERTS
    for name, url in urls.items():
        page, _, anchor = url.partition("#")
        assert page.endswith("/" + RUNBOOK.name) and anchor == name.lower() and anchor in anchors, (name, url)


def test_every_alert_has_a_promtool_test_that_fires_it_and_one_that_does_not():
    fired, quiet = set(), set()
    cases = re.findall(r"alertname: (\w+)\n\s*exp_alerts:(.*?)(?=\n\s*- eval_time:|\n\s*- interval:|\Z)",
                       RULES_TEST.read_text(), re.S)
    for name, expected in cases:
        (quiet if expected.strip() == "[]" else fired).add(name)
    assert fired == EXPECTED_ALERTS, f"never fired in a test: {sorted(EXPECTED_ALERTS - fired)}"
    assert quiet == EXPECTED_ALERTS, f"never shown quiet in a test: {sorted(EXPECTED_ALERTS - quiet)}"


def test_scrape_config_targets_metrics_listener():
    text = CONFIG.read_text()
    assert "job_name: strongroom" in text
    assert '"127.0.0.1:9464"' in text
    assert "scrape_interval: 15s" in text
    assert "- strongroom-alerts.yml" in text


promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not on PATH (apt-get install prometheus)",
)


def run_promtool(*args: str) -> str:
    proc = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=PROM)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return out


@promtool
def test_promtool_check_rules():
    out = run_promtool("check", "rules", str(RULES))
    assert f"{len(EXPECTED_ALERTS)} rules found" in out, out


@promtool
def test_promtool_check_config():
    run_promtool("check", "config", str(CONFIG))


@promtool
def test_promtool_test_rules():
    """Every alert fires on a synthetic failure and stays quiet when healthy."""
    out = run_promtool("test", "rules", str(RULES_TEST))
    assert "SUCCESS" in out, out
