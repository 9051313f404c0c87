"""The erasure certificate (issue 13 item 1): each executed erasure yields a statement
signed with Ed25519 (who asked, who approved, which keys were destroyed and when, which
repositories were reached and which not), kept in the audit log, printable as text and
PDF, and checked both ways: the signature, and the same statement in the log."""
from __future__ import annotations

import copy
import io
import json
import uuid

import pytest
from pypdf import PdfReader

from strongroom.core import audit
from strongroom.core.config import BackupConfigurationSettings
from strongroom.core.db.engine import transaction
from strongroom.core.errors import ConflictError, NotFoundError, ValidationError
from strongroom.core.jobs import backup
from strongroom.core.retention import certificate, erasure
from strongroom.core.files.store import open_files_target
from tests.core.conftest import seed_clients


def _with_offsite(ctx, tmp_path) -> None:
    """A default local repository, and an "offsite" one on an endpoint that refuses."""
    offsite = BackupConfigurationSettings(
        target="s3://sr-offsite/p?endpoint_url=http://127.0.0.1:9&max_attempts=1&connect_timeout=0.5")
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(update={
        "target": str(tmp_path / "repo"), "configurations": {"offsite": offsite}})})


@pytest.fixture
def erased(ctx, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    _with_offsite(ctx, tmp_path)
    ids = seed_clients(ctx, n=4)
    backup.run(ctx, {}, lambda *a: None)
    with transaction(ctx.engine) as conn:
        request = erasure.request_erasure(conn, client_id=ids[0], actor="user:alice", reason="ref 9")
    with pytest.raises(ConflictError, match="not executed"):
        certificate.complete(ctx, request["id"], actor="user:bob")
    erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob",
                    files=open_files_target(ctx.settings))
    return ctx, request, ids[0], certificate.complete(ctx, request["id"], actor="user:bob")


def test_certificate_names_the_people_keys_and_every_repository_reached_or_not(erased):
    ctx, request, client, cert = erased
    assert (cert["request_id"], cert["client_id"]) == (str(request["id"]), str(client))
    assert (cert["requested_by"], cert["approved_by"]) == ("user:alice", "user:bob")
    assert len(cert["destroyed_keys"]) == 1 and cert["destroyed_keys"][0]["destroyed_at"]
    by_name = {c["configuration"]: c for c in cert["repositories"]}
    assert by_name["default"]["status"] == "updated" and by_name["default"]["legacy_snapshots"] == 0
    assert by_name["offsite"]["status"] == "pending" and not cert["reached_all_copies"]
    assert cert["signature"]["algorithm"] == "Ed25519"
    assert certificate.latest(ctx, request["id"]) == cert
    assert "ref 9" not in json.dumps(cert)                 # a free-text reason may name a person

    text = certificate.as_text(cert)
    assert str(client) in text and "user:bob" in text and "PENDING" in text
    pdf = PdfReader(io.BytesIO(certificate.as_pdf(cert)))
    extracted = "".join(page.extract_text() for page in pdf.pages)
    assert str(request["id"]) in extracted and cert["signature"]["sha256"] in extracted.replace("\n", "")
    # A name outside Latin-1 prints as it is spelled (it printed "?" in Courier).
    named = copy.deepcopy(cert)
    named["approved_by"] = "user:Łukasz Zéllér"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(
        certificate.as_pdf(named, practice="Riverside"))).pages)
    assert "Łukasz Zéllér" in text and "Riverside" in text and "page 1 of" in text


def test_a_certificate_verifies_against_the_log_and_an_altered_one_does_not(erased):
    ctx, request, _, cert = erased
    assert [v.ok for v in certificate.verify_all(ctx.engine)] == [True]
    with transaction(ctx.engine, read_only=True) as conn:
        assert certificate.verify(conn, cert).ok
        forged = copy.deepcopy(cert)
        forged["approved_by"] = "user:alice"
        assert certificate.verify(conn, forged).reason.startswith("signature does not verify")
        stranger = copy.deepcopy(cert)
        stranger["signature"]["key_id"] = str(uuid.uuid4())
        assert not certificate.verify(conn, stranger).ok
    assert audit.verify(ctx.engine).ok
    with pytest.raises(ValidationError):
        certificate.parse(b"{not json")
    with pytest.raises(ValidationError):
        certificate.parse(json.dumps({"kind": "something else"}))


def test_reissuing_after_the_repository_is_reachable_says_every_copy_was_reached(erased):
    ctx, request, _, _ = erased
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(update={
        "configurations": {}})})
    again = certificate.complete(ctx, request["id"], actor="user:bob")
    assert again["reached_all_copies"] and [c["status"] for c in again["repositories"]] == ["updated"]
    assert certificate.latest(ctx, request["id"]) == again
    assert all(v.ok for v in certificate.verify_all(ctx.engine))
    with pytest.raises(NotFoundError):
        certificate.latest(ctx, uuid.uuid4())
