"""The compliance report an auditor keeps (issue 17 item 3): the score and each area's
evidence, the HIPAA technical safeguards and contingency-plan evidence each passed or
failed with evidence and fix, the audit-chain proof, the period's erasures with their
certificates; signed with the audit signing key in PDF, Markdown and JSON, and checked
so that any changed byte is found. Bad input is refused by name and changes nothing."""
from __future__ import annotations

import base64
import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pypdf import PdfReader

from strongroom.core import audit, checkpoints, compliance
from strongroom.core.db.engine import transaction
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ValidationError
from strongroom.core.jobs import integrity
from strongroom.core.reports import compliance_report as report
from strongroom.core.reports import signing
from strongroom.core.repository.practices import create_practice
from strongroom.core.principal import SYSTEM
from strongroom.core.retention import certificate, erasure
from strongroom.core.demo import client_records
from strongroom.core.repository.clients import insert_clients
from strongroom.core.files.store import open_files_target
from tests.core.conftest import with_backup_target

PRACTICE = "Zéllér 東京 Clinic"
TECHNICAL = ("164.312(a)(2)(i)", "164.312(a)(2)(ii)", "164.312(a)(2)(iii)", "164.312(a)(2)(iv)",
             "164.312(b)", "164.312(c)(1)", "164.312(d)", "164.312(e)(1)")
CONTINGENCY = ("164.308(a)(7)(ii)(A)", "164.308(a)(7)(ii)(B)", "164.308(a)(7)(ii)(D)")


@pytest.fixture
def practice_ctx(ctx, tmp_path):
    """A practice with clients, an integrity run, a checkpoint kept in a file, and one
    executed erasure with its certificate (no backup: the report must say so)."""
    with_backup_target(ctx, tmp_path)
    ctx.settings = ctx.settings.model_copy(update={"audit": ctx.settings.audit.model_copy(
        update={"checkpoint_file": tmp_path / "checkpoints" / "newest.json"})})
    ids = []
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, PRACTICE)
        insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(4), created=ids)
    with transaction(ctx.engine) as conn:
        request = erasure.request_erasure(conn, client_id=ids[0], actor="user:alice", reason="ref 9")
    erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob",
                    files=open_files_target(ctx.settings))
    certificate.complete(ctx, request["id"], actor="user:bob")
    integrity.run(ctx, {}, lambda *a: None)
    checkpoints.take(ctx, actor="test", reason="test")
    ctx.erasure_request = str(request["id"])
    return ctx


def _produce(ctx, fmt, **kw):
    return report.produce(ctx, fmt=fmt, actor="user:auditor", **kw)


def test_json_report_holds_score_safeguards_chain_proof_and_erasures(practice_ctx):
    ctx = practice_ctx
    produced = _produce(ctx, "json")
    content = json.loads(produced.data)["report"]
    live = compliance.report(ctx.settings, ctx.engine)
    assert content["score"] == live.score and set(content["areas"]) == set(compliance.WEIGHTS)
    assert all("evidence" in c and "remediation" in c for c in content["checks"])
    assert content["header"]["practice"] == PRACTICE and content["header"]["produced_by"] == "user:auditor"
    assert content["header"]["confidentiality"].startswith("CONFIDENTIAL")
    safeguards = {s["safeguard"]: s for s in content["hipaa_technical_safeguards"]}
    assert set(TECHNICAL) <= set(safeguards)
    contingency = {s["safeguard"]: s for s in content["contingency_plan"]}
    assert set(CONTINGENCY) <= set(contingency)
    for item in [*safeguards.values(), *contingency.values()]:
        assert isinstance(item["passed"], bool) and isinstance(item["evidence"], dict) and item["name"]
        assert item["passed"] or item["fix"]
    assert "rto_seconds" in contingency["164.308(a)(7)(ii)(D)"]["evidence"]
    assert safeguards["164.312(b)"]["passed"]                       # the integrity run verified the chain
    chain = content["audit_chain"]
    with ctx.engine.connect() as conn:
        head_id, head_hash = audit.head(conn)
    assert chain["head_id"] <= head_id and chain["head_hash"]
    assert chain["checkpoint"]["signature"] and chain["checkpoint"]["public_key"]
    assert chain["checkpoint_holds"] is True
    [erased] = content["erasures"]
    assert erased["request_id"] == ctx.erasure_request and erased["certificate_verified"] is True
    assert erased["certificate"]["signature"]["algorithm"] == "Ed25519"


@pytest.mark.parametrize("fmt", ["pdf", "md", "json"])
def test_each_format_verifies_and_any_changed_byte_is_found(practice_ctx, fmt):
    ctx = practice_ctx
    data = _produce(ctx, fmt).data
    verdict = report.verify(data, engine=ctx.engine)
    assert verdict.ok, verdict.reason
    assert verdict.format == fmt
    step = max(1, len(data) // 97)
    for at in [0, len(data) - 1, *range(1, len(data), step), *signing.block_span(data, fmt)]:
        changed = bytearray(data)
        changed[at] ^= 0x01
        assert not report.verify(bytes(changed), engine=ctx.engine).ok, f"byte {at} of {len(data)}"
    assert not report.verify(data + b" ", engine=ctx.engine).ok
    assert not report.verify(data[:-1], engine=ctx.engine).ok


def test_pdf_report_is_a_document_an_officer_reads(practice_ctx):
    data = _produce(practice_ctx, "pdf").data
    reader = PdfReader(io.BytesIO(data), strict=True)
    pages = [p.extract_text() for p in reader.pages]
    text = "\n".join(pages)
    for number in range(1, len(pages) + 1):
        assert f"page {number} of {len(pages)}" in pages[number - 1]
        assert "CONFIDENTIAL" in pages[number - 1] and PRACTICE in pages[number - 1]
    assert "user:auditor" in pages[0]
    for code in (*TECHNICAL, *CONTINGENCY):
        assert code in text
    assert "PASS" in text and "FAIL" in text and "Fix" in text
    assert practice_ctx.erasure_request in text.replace("\n", "")
    assert "??" not in text


def test_markdown_report_lists_every_safeguard_with_its_verdict(practice_ctx):
    text = _produce(practice_ctx, "md").data.decode()
    assert text.startswith("# Compliance report") and PRACTICE in text
    for code in (*TECHNICAL, *CONTINGENCY):
        assert any(code in line and ("PASS" in line or "FAIL" in line) for line in text.splitlines())


def test_evidence_reads_as_words_not_as_data_structures(practice_ctx):
    """An officer reads "active accounts: 2", not {"active_accounts": 2}; the json format
    keeps the structure for programs."""
    for fmt in ("md", "pdf"):
        produced = _produce(practice_ctx, fmt).data
        text = (produced.decode().split("<!--")[0] if fmt == "md" else      # the signature is data
                "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(produced)).pages))
        flat = " ".join(text.split())
        assert "active accounts: " in flat and "usernames unique: enforced by a unique constraint" in flat
        assert '{"' not in text and '": ' not in text


def test_a_pinned_public_key_verifies_without_the_database(practice_ctx):
    ctx = practice_ctx
    produced = _produce(ctx, "md")
    with ctx.engine.connect() as conn:
        public = ctx.keyring.signing_key(conn).public_key().public_bytes_raw()
    assert report.verify(produced.data, public_key=public).ok
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    verdict = report.verify(produced.data, public_key=other)
    assert not verdict.ok and "key" in verdict.reason


def test_a_report_re_signed_with_another_key_is_refused(practice_ctx):
    ctx = practice_ctx
    data = _produce(ctx, "json").data
    document = json.loads(data)
    forger = Ed25519PrivateKey.generate()
    statement = {k: v for k, v in document["signature"].items() if k not in ("public_key", "value")}
    document["signature"]["public_key"] = base64.b64encode(forger.public_key().public_bytes_raw()).decode()
    document["signature"]["value"] = base64.b64encode(
        forger.sign(audit.canonical_json(statement).encode())).decode()
    forged = signing.serialize_json(document)
    verdict = report.verify(forged, engine=ctx.engine)
    assert not verdict.ok and "key" in verdict.reason


def test_a_file_that_is_no_report_is_refused_without_echoing_it(practice_ctx):
    secret = b"%PDF-1.4 Jane Doe 123-45-6789"
    verdict = report.verify(secret, engine=practice_ctx.engine)
    assert not verdict.ok and "Jane" not in verdict.reason and "123-45" not in verdict.reason


def test_a_period_in_the_future_or_an_unknown_format_is_refused_and_nothing_changes(practice_ctx):
    ctx = practice_ctx
    with ctx.engine.connect() as conn:
        before = audit.head(conn)
    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    with pytest.raises(ValidationError) as caught:
        _produce(ctx, "pdf", until=tomorrow)
    assert "future" in str(caught.value) and tomorrow not in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        _produce(ctx, "pdf", since="2099-01-01")
    assert "future" in str(caught.value) and "2099" not in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        _produce(ctx, "pdf", since="2025-12-01", until="2025-11-01")
    assert "2025" not in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        _produce(ctx, "docx<script>")
    assert "docx" not in str(caught.value) and "pdf, md, json" in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        _produce(ctx, "pdf", since="Jane Doe")
    assert "Jane" not in str(caught.value)
    with ctx.engine.connect() as conn:
        assert audit.head(conn) == before


def test_producing_a_report_is_audited_with_its_digest(practice_ctx):
    ctx = practice_ctx
    produced = _produce(ctx, "json")
    with ctx.engine.connect() as conn:
        [entry] = audit.tail(conn, limit=1)
    assert entry.action == "EXPORT" and entry.actor == "user:auditor"
    assert entry.details["what"] == "compliance_report" and entry.details["sha256"] == produced.sha256


def test_the_period_bounds_the_erasures_listed(practice_ctx):
    ctx = practice_ctx
    content = json.loads(_produce(ctx, "json", since="2020-01-01", until="2020-12-31").data)["report"]
    assert content["erasures"] == []
    assert content["header"]["period"] == {"since": "2020-01-01T00:00:00+00:00",
                                           "until": "2020-12-31T23:59:59.999999+00:00"}
    assert datetime.fromisoformat(content["header"]["produced_at"]) <= datetime.now(timezone.utc)
