"""The compliance report an auditor keeps: PDF, Markdown or JSON, signed.

What it holds (the JSON form is the content; Markdown and PDF print the same):
the score and each area's checks with evidence (core.compliance, as of the moment it is
produced); the HIPAA Security Rule technical safeguards of 45 CFR 164.312 and the
contingency-plan evidence of 164.308(a)(7), each passed or failed with its evidence and
the fix; the audit-chain proof (head, newest signed checkpoint with its signature, and
whether the log still holds it); the erasures executed in the period with their
certificates (each checked). The period bounds the erasures and the audit entries
counted; the checks are the system's state when the report is produced.

It is signed with the audit signing key (core.reports.signing) and producing it is
audited (EXPORT, what=compliance_report, with the document's SHA-256). Bad input (an
unknown format, a period in the future or upside down, a date that is no date) is
refused before anything is read or written, by name, never echoing the value.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import func, or_, select

from strongroom.core import audit, checkpoints, compliance, pdf
from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, ErasureRequest, IntegrityCheck, Practice, User
from strongroom.core.db.types import utcnow
from strongroom.core.errors import NotFoundError, ValidationError
from strongroom.core.reports import signing
from strongroom.core.retention import certificate

FORMATS = ("pdf", "md", "json")
DEFAULT_DAYS = 90
KIT_MAX_AGE = timedelta(days=365)
TITLE = "Compliance report"
_log = AuditLog.__table__

# (safeguard, name, the check safeguard codes whose checks evidence it)
TECHNICAL = (
    ("164.312(a)(2)(i)", "Access control: unique user identification", ()),
    ("164.312(a)(2)(ii)", "Access control: emergency access procedure", ()),
    ("164.312(a)(2)(iii)", "Access control: automatic logoff", ("164.312(a)(2)(iii)",)),
    ("164.312(a)(2)(iv)", "Access control: encryption and decryption", ("164.312(a)(2)(iv)",)),
    ("164.312(b)", "Audit controls", ("164.312(b)",)),
    ("164.312(c)(1)", "Integrity", ("164.312(c)(1)",)),
    ("164.312(d)", "Person or entity authentication", ("164.312(d)",)),
    ("164.312(e)(1)", "Transmission security", ()),
)
CONTINGENCY = (
    ("164.308(a)(7)(ii)(A)", "Data backup plan: backups made and proven", ("164.308(a)(7)(ii)(A)",)),
    ("164.308(a)(7)(ii)(B)", "Disaster recovery plan: backups verified", ("164.308(a)(7)(ii)(B)",)),
    ("164.308(a)(7)(ii)(D)", "Testing: restore drilled, recovery time measured", ("164.308(a)(7)(ii)(D)",)),
)


# --- input --------------------------------------------------------------------------------

def check_format(value: object) -> str:
    fmt = str(value or "").strip().lower()
    if fmt not in FORMATS:
        raise ValidationError(f"compliance report: unknown format (known: {', '.join(FORMATS)})")
    return fmt


def _bound(name: str, value: object, *, end: bool) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value).strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time.max if end else time.min, tzinfo=timezone.utc)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"compliance report: {name} is not an ISO date (YYYY-MM-DD) or datetime") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def check_period(since: object, until: object, *, now: datetime) -> tuple[datetime, datetime]:
    """The period (since, until), defaulting to the last DEFAULT_DAYS days up to now.
    A bound in the future, or since after until, is refused (ValidationError)."""
    start, end = _bound("since", since, end=False), _bound("until", until, end=True)
    if end is not None and end.date() > now.date():
        raise ValidationError("compliance report: the period ends in the future (until is after today); "
                              "a report states what has happened")
    if start is not None and start > now:
        raise ValidationError("compliance report: the period starts in the future (since is after now)")
    end = min(end, now) if end is not None else now
    start = start if start is not None else end - timedelta(days=DEFAULT_DAYS)
    if start > end:
        raise ValidationError("compliance report: since is after until")
    return start, end


# --- content ------------------------------------------------------------------------------

def _item(code: str, name: str, checks: list[compliance.Check], extra: list[dict]) -> dict:
    parts = [{"check": c.name, "passed": c.passed, "evidence": c.evidence, "fix": c.remediation} for c in checks]
    parts += extra
    passed = bool(parts) and all(p["passed"] for p in parts)
    fixes = [p["fix"] for p in parts if not p["passed"] and p["fix"]]
    if not parts:
        fixes = ["nothing evidences this safeguard yet"]
    return {"safeguard": code, "name": name, "passed": passed,
            "evidence": {p["check"]: p["evidence"] for p in parts}, "fix": "; ".join(dict.fromkeys(fixes)),
            "checks": [{"check": p["check"], "passed": p["passed"]} for p in parts]}


def _unique_ids(conn, since: datetime, until: datetime) -> dict:
    users = User.__table__
    active = conn.execute(select(func.count()).select_from(users).where(
        users.c.deleted_at.is_(None), users.c.disabled.is_(False))).scalar_one()
    anonymous = conn.execute(select(func.count()).select_from(_log).where(
        _log.c.occurred_at >= since, _log.c.occurred_at <= until,
        or_(_log.c.actor.is_(None), _log.c.actor == ""))).scalar_one()
    entries = conn.execute(select(func.count()).select_from(_log).where(
        _log.c.occurred_at >= since, _log.c.occurred_at <= until)).scalar_one()
    return {"check": "every account is one person's, and every audit entry of the period names its actor",
            "passed": anonymous == 0,
            "evidence": {"active_accounts": active, "usernames_unique": "enforced by a unique constraint",
                         "audit_entries_in_period": entries, "entries_without_actor": anonymous},
            "fix": "give every person their own account (`strongroom user add`); never share one"}


def _emergency_access(conn, now: datetime) -> dict:
    rows = conn.execute(select(_log.c.occurred_at, _log.c.details).where(
        _log.c.action == "VERIFY", _log.c.table_name == "data_keys", _log.c.outcome == "success")
        .order_by(_log.c.id.desc()).limit(200)).all()
    tested = next((r.occurred_at for r in rows if json.loads(r.details or "{}").get("what") == "recovery_kit"), None)
    return {"check": f"the key recovery kit was tested within {KIT_MAX_AGE.days} days",
            "passed": tested is not None and now - tested <= KIT_MAX_AGE,
            "evidence": {"last_recovery_kit_test": tested.isoformat() if tested else None},
            "fix": "print the recovery kit (`strongroom keys export-kit`), store it offline and test it "
                   "(`strongroom keys test-kit`)"}


def _transmission(settings) -> dict:
    daemon = settings.daemon
    tcp = daemon.tcp_endpoint is not None
    curve = daemon.curve_secret_key_file is not None
    plain_targets = sorted(name for name, url in _target_urls(settings).items() if "endpoint_url=http://" in url)
    return {"check": "control traffic leaves the host only encrypted (CURVE), backups travel over TLS",
            "passed": (not tcp or curve) and not plain_targets,
            "evidence": {"control_socket": "local IPC socket (file permissions)", "tcp_endpoint": tcp,
                         "curve_encryption": curve, "metrics_listen": settings.metrics.listen,
                         "backup_targets_without_tls": plain_targets},
            "fix": "set daemon.curve_secret_key_file when daemon.tcp_endpoint is set; use https endpoints "
                   "for backup targets"}


def _target_urls(settings) -> dict[str, str]:
    from strongroom.core.backup import configurations

    out = {}
    for name in configurations.names(settings):
        target = configurations.resolve(settings, name).target
        if target:
            out[name] = str(target)
    return out


def _rto(conn) -> dict:
    rows = conn.execute(select(_log.c.occurred_at, _log.c.details).where(_log.c.action == "RESTORE")
                        .order_by(_log.c.id.desc()).limit(200)).all()
    for row in rows:
        details = json.loads(row.details or "{}")
        if details.get("drill"):
            return {"rto_seconds": details.get("seconds"), "rto_measured_at": row.occurred_at.isoformat(),
                    "rows_restored": details.get("rows")}
    return {"rto_seconds": None, "rto_measured_at": None}


def _chain(ctx: Context, conn) -> dict:
    head_id, head_hash = audit.head(conn)
    cp = checkpoints.newest(ctx)
    holds = None
    if cp is not None and cp.get("head_id") is not None:
        stored = conn.execute(select(_log.c.hash).where(_log.c.id == cp["head_id"])).scalar()
        holds = stored == cp["head_hash"]
    checks = IntegrityCheck.__table__
    last = conn.execute(select(checks.c.status, checks.c.started_at).where(checks.c.check_type == "audit_chain")
                        .order_by(checks.c.started_at.desc()).limit(1)).first()
    return {"head_id": head_id, "head_hash": head_hash,
            "checkpoint": None if cp is None else {k: cp.get(k) for k in (
                "head_id", "head_hash", "signed_at", "key_id", "public_key", "signature")},
            "checkpoint_holds": holds,
            "last_verification": None if last is None else {"status": last.status,
                                                            "at": last.started_at.isoformat()}}


def _erasures(ctx: Context, conn, since: datetime, until: datetime) -> list[dict]:
    requests = ErasureRequest.__table__
    rows = conn.execute(select(requests.c.id, requests.c.executed_at).where(
        requests.c.status == "executed", requests.c.executed_at >= since, requests.c.executed_at <= until)
        .order_by(requests.c.executed_at)).all()
    out = []
    for row in rows:
        try:
            cert = certificate.latest(ctx, row.id)
            verified = certificate.verify(conn, cert).ok
        except NotFoundError:
            cert, verified = None, False
        out.append({"request_id": str(row.id), "executed_at": row.executed_at.isoformat(),
                    "certificate": cert, "certificate_verified": verified})
    return out


def build(ctx: Context, *, actor: str, since: datetime, until: datetime, fmt: str, now: datetime) -> dict:
    """The report's content, JSON-ready."""
    scored = compliance.report(ctx.settings, ctx.engine, now=now)
    by_code = lambda codes: [c for c in scored.checks if any(code in c.safeguard for code in codes)]  # noqa: E731
    with transaction(ctx.engine, read_only=True) as conn:
        practices = conn.execute(select(Practice.__table__.c.name).where(
            Practice.__table__.c.deleted_at.is_(None)).order_by(Practice.__table__.c.name)).scalars().all()
        extra = {"164.312(a)(2)(i)": [_unique_ids(conn, since, until)],
                 "164.312(a)(2)(ii)": [_emergency_access(conn, now)],
                 "164.312(e)(1)": [_transmission(ctx.settings)]}
        technical = [_item(code, name, by_code(codes), extra.get(code, [])) for code, name, codes in TECHNICAL]
        rto = _rto(conn)
        contingency = [_item(code, name, by_code(codes), []) for code, name, codes in CONTINGENCY]
        contingency[-1]["evidence"].update(rto)
        chain = _chain(ctx, conn)
        erasures = _erasures(ctx, conn, since, until)
    s = ctx.settings
    settings = {"format": fmt, "session_idle_minutes": s.auth.session_idle_minutes,
                "require_2fa_roles": list(s.auth.require_2fa_roles),
                "backup_verified_days": s.integrity.backup_verified_days,
                "backup_drilled_days": s.integrity.backup_drilled_days,
                "schedules": dict(sorted(s.schedules.items()))}
    header = {"title": TITLE, "practice": ", ".join(practices) or "-", "produced_by": actor,
              "produced_at": now.isoformat(), "period": {"since": since.isoformat(), "until": until.isoformat()},
              "settings": settings, "confidentiality": pdf.DEFAULT_MARKING}
    return {"kind": signing.KIND, "version": signing.VERSION, "header": header,
            "score": scored.score, "areas": scored.areas,
            "not_evidenced": scored.as_dict()["not_evidenced"],
            "checks": [asdict(c) for c in scored.checks],
            "hipaa_technical_safeguards": technical, "contingency_plan": contingency,
            "audit_chain": chain, "erasures": erasures}


# --- rendering ----------------------------------------------------------------------------

def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def _evidence_text(evidence: object, nested: bool = False) -> str:
    """Evidence as a reader reads it (the json format keeps the structure): `name: value`
    pairs with words for names, "none" for nothing, a check's own pairs in parentheses
    after its label."""
    if evidence is None:
        return "none"
    if isinstance(evidence, bool):
        return "yes" if evidence else "no"
    if isinstance(evidence, (list, tuple, set)):
        return ", ".join(_evidence_text(v, True) for v in evidence) or "none"
    if isinstance(evidence, dict):
        if not evidence:
            return "none"
        parts = []
        for key, value in evidence.items():
            name = str(key).replace("_", " ")
            if isinstance(value, dict) and value and not nested:
                parts.append(f"{name} ({_evidence_text(value, True)})")
            elif isinstance(value, dict) and value:
                parts.append(f"{name}: [{_evidence_text(value, True)}]")
            else:
                parts.append(f"{name}: {_evidence_text(value, True)}")
        return ("; " if not nested else ", ").join(parts)
    return str(evidence)


def _settings_pairs(header: dict) -> tuple[tuple[str, str], ...]:
    period = header["period"]
    pairs = [("period", f"{period['since'][:10]} to {period['until'][:10]}")]
    pairs += [(k.replace("_", " "), v if isinstance(v, str) else _evidence_text(v))
              for k, v in header["settings"].items()]
    return tuple(pairs)


def render_md(content: dict) -> bytes:
    h = content["header"]
    out = [f"# {TITLE}", "", f"**{h['confidentiality']}**", "",
           f"- Practice: {h['practice']}", f"- Produced by: {h['produced_by']}",
           f"- Produced at: {h['produced_at']}",
           *[f"- {k}: {v}" for k, v in _settings_pairs(h)], "",
           f"## Score: {content['score']}/100", "", "| Area | Points | Weight | Checks passed | Status |",
           "|---|---|---|---|---|"]
    for name, area in content["areas"].items():
        out.append(f"| {name} | {area['points']} | {area['weight']} | {area['passed']}/{area['checks']} "
                   f"| {area['status']} |")

    def section(title: str, items: list[dict]) -> None:
        out.extend(["", f"## {title}", "", "| Safeguard | Requirement | Verdict | Evidence | Fix |",
                    "|---|---|---|---|---|"])
        for item in items:
            cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
            out.append(f"| {item['safeguard']} | {cell(item['name'])} | {_verdict(item['passed'])} "
                       f"| {cell(_evidence_text(item['evidence']))} | {cell(item['fix'] or '-')} |")

    section("HIPAA Security Rule technical safeguards (45 CFR 164.312)", content["hipaa_technical_safeguards"])
    section("Contingency plan (45 CFR 164.308(a)(7))", content["contingency_plan"])
    out.extend(["", "## Checks", ""])
    for c in content["checks"]:
        out.append(f"- {_verdict(c['passed'])} [{c['area']}] {c['name']} ({c['safeguard']}): "
                   f"{_evidence_text(c['evidence'])}" + ("" if c["passed"] else f" Fix: {c['remediation']}"))
    chain = content["audit_chain"]
    out.extend(["", "## Audit chain proof", "", f"- Head: entry {chain['head_id']} {chain['head_hash']}",
                f"- Newest signed checkpoint: {_evidence_text(chain['checkpoint'])}",
                f"- The log still holds the checkpointed entry: {chain['checkpoint_holds']}",
                f"- Last verification: {_evidence_text(chain['last_verification'])}", "",
                "## Erasures executed in the period", ""])
    for e in content["erasures"] or [{"request_id": None}]:
        if e["request_id"] is None:
            out.append("None.")
            continue
        cert = e["certificate"] or {}
        sig = cert.get("signature", {})
        out.append(f"- Request {e['request_id']} executed {e['executed_at']}: certificate "
                   f"{'verified' if e['certificate_verified'] else 'MISSING OR NOT VERIFIED'}; "
                   f"signature {sig.get('algorithm', '-')} key {sig.get('key_id', '-')} "
                   f"statement SHA-256 {sig.get('sha256', '-')}")
    return ("\n".join(out) + "\n").encode()


def render_pdf(content: dict) -> bytes:
    h = content["header"]
    header = pdf.Header(title=TITLE, practice=h["practice"], produced_by=h["produced_by"],
                        produced_at=datetime.fromisoformat(h["produced_at"]), settings=_settings_pairs(h),
                        marking=h["confidentiality"])
    doc = pdf.Writer(header, keywords=signing.pdf_placeholder())
    doc.heading(f"Score: {content['score']}/100", level=2)
    doc.table([pdf.Column("Area", 1.2), pdf.Column("Points", 0.8), pdf.Column("Weight", 0.8),
               pdf.Column("Checks passed", 1), pdf.Column("Status", 1.4)],
              ([name, a["points"], a["weight"], f"{a['passed']}/{a['checks']}", a["status"]]
               for name, a in content["areas"].items()))
    columns = [pdf.Column("Safeguard", sample="164.308(a)(7)(ii)(D)"), pdf.Column("Requirement", 1.3),
               pdf.Column("Verdict", sample="FAIL"), pdf.Column("Evidence", 3), pdf.Column("Fix", 2)]
    for title, key in (("HIPAA Security Rule technical safeguards (45 CFR 164.312)", "hipaa_technical_safeguards"),
                       ("Contingency plan (45 CFR 164.308(a)(7))", "contingency_plan")):
        doc.heading(title, level=2)
        doc.table(columns, ([i["safeguard"], i["name"], _verdict(i["passed"]), _evidence_text(i["evidence"]),
                             i["fix"] or "-"] for i in content[key]))
    doc.heading("Checks", level=2)
    doc.table([pdf.Column("Verdict", sample="FAIL"), pdf.Column("Area", sample="encryption"),
               pdf.Column("Check", 2), pdf.Column("Evidence", 3), pdf.Column("Fix", 2)],
              ([_verdict(c["passed"]), c["area"], c["name"], _evidence_text(c["evidence"]),
                "-" if c["passed"] else c["remediation"]] for c in content["checks"]))
    chain = content["audit_chain"]
    doc.heading("Audit chain proof", level=2)
    cp = chain["checkpoint"] or {}
    doc.key_values([("head", f"entry {chain['head_id']} {chain['head_hash']}"),
                    ("newest checkpoint", f"entry {cp.get('head_id')} {cp.get('head_hash')} signed "
                                          f"{cp.get('signed_at')}" if cp else "none stored"),
                    ("checkpoint key", f"{cp.get('key_id')} public {cp.get('public_key')}" if cp else "-"),
                    ("checkpoint signature", cp.get("signature") or "-"),
                    ("log still holds the checkpointed entry", str(chain["checkpoint_holds"])),
                    ("last verification", _evidence_text(chain["last_verification"]))])
    doc.heading("Erasures executed in the period", level=2)
    if not content["erasures"]:
        doc.paragraph("None.")
    for e in content["erasures"]:
        sig = (e["certificate"] or {}).get("signature", {})
        doc.key_values([("request", e["request_id"]), ("executed at", e["executed_at"]),
                        ("certificate", "verified" if e["certificate_verified"] else "MISSING OR NOT VERIFIED"),
                        ("signature", f"{sig.get('algorithm', '-')} by key {sig.get('key_id', '-')}"),
                        ("statement SHA-256", sig.get("sha256", "-")), ("signature value", sig.get("value", "-"))])
        doc.space(2)
    doc.paragraph("This document is signed with the practice's audit signing key (Ed25519); its signature is "
                  "in the document's metadata. Check it with `strongroom compliance verify FILE`.")
    return doc.output()


# --- the verbs -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Produced:
    format: str
    data: bytes
    sha256: str
    content: dict


def produce(ctx: Context, *, fmt: str, actor: str, since: object = None, until: object = None,
            now: datetime | None = None) -> Produced:
    """Build, render and sign the report; audit that it was issued. Input is checked
    first: a bad format or period raises ValidationError and changes nothing."""
    fmt = check_format(fmt)
    now = now or utcnow()
    start, end = check_period(since, until, now=now)
    content = build(ctx, actor=actor, since=start, until=end, fmt=fmt, now=now)
    rendered = {"json": lambda: content, "md": lambda: render_md(content), "pdf": lambda: render_pdf(content)}[fmt]()
    with transaction(ctx.engine) as conn:
        data = signing.sign(conn, ctx.keyring, fmt, rendered)
        digest = hashlib.sha256(data).hexdigest()
        audit.append(conn, actor=actor, action="EXPORT", table_name="audit_logs",
                     details={"what": "compliance_report", "format": fmt, "sha256": digest,
                              "period": content["header"]["period"], "score": content["score"]})
    return Produced(fmt, data, digest, content)


def verify(data: bytes, *, engine=None, public_key: bytes | None = None) -> signing.Verdict:  # noqa: ANN001
    """Check a report file's bytes (see core.reports.signing.check)."""
    if public_key is not None or engine is None:
        return signing.check(data, public_key=public_key)
    with engine.connect() as conn:
        return signing.check(data, conn=conn)
