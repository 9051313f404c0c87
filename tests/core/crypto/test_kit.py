"""The key recovery kit: export, type back, open, prove against the database, recover."""
from __future__ import annotations

import base64
import json
import re
import stat

import pytest
import segno
from crypto_helpers import decrypt_all, seed
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from strongroom.core.crypto import kit
from strongroom.core.crypto import kek_rotation
from strongroom.core.crypto.kek import Kek, encode_kek, generate_kek, read_kek_file
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog
from strongroom.core.errors import CryptoError, KeyUnavailableError, ValidationError

PASS = "violet tractor harbour 42"
WORK = 14  # scrypt N=2^14 keeps tests fast; the default (2^17) is tested once
KEK = Kek(bytes(range(32)), "test")


@pytest.fixture(scope="module")
def page() -> str:
    return kit.export_kit(KEK, PASS, practice_name="Harbour Counselling", work=WORK)


def block_lines(text: str) -> list[str]:
    lines = text.splitlines()
    return lines[lines.index(kit.BEGIN) + 1:lines.index(kit.END)]


def test_kit_round_trips_with_the_default_work_factor():
    text = kit.export_kit(KEK, PASS, practice_name="P")
    assert "scrypt N=2^17 r=8 p=1" in text
    assert kit.open_kit(text, PASS).key == KEK.key


def test_page_names_practice_key_id_and_recovery_steps(page):
    assert "STRONGROOM KEY RECOVERY KIT" in page
    assert "Practice:  Harbour Counselling" in page
    assert f"Key id:    {KEK.kek_id}" in page
    assert re.search(r"Created:\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC", page)
    assert "strongroom keys recover --kit FILE" in page and "keys test-kit" in page


def test_page_holds_no_key_material_in_clear(page):
    for shown in (KEK.key.hex(), base64.b32encode(KEK.key).decode()[:16],
                  encode_kek(KEK.key).split(":")[1].strip()[:16]):
        assert shown not in page and shown.lower() not in page


def test_block_is_groups_of_four_with_a_checksum_per_line(page):
    lines = block_lines(page)
    assert len(lines) == 7
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        assert tokens[0] == f"{number:02d}"
        assert all(len(t) == 4 and re.fullmatch(r"[A-Z2-7]+", t) for t in tokens[1:])
    assert max(len(line) for line in page.splitlines()) <= 80


def test_qr_code_encodes_the_same_blob(page):
    blob = kit.read_kit(page)
    expected = kit.render_qr(kit.qr_payload(blob))
    assert "\n".join(expected) in page
    assert any("█" in line for line in expected)
    qr = segno.make(kit.qr_payload(blob), error="m", micro=False)
    assert qr.mode == "alphanumeric"  # base32 fits QR's compact mode


def test_qr_payload_alone_opens(page):
    payload = kit.qr_payload(kit.read_kit(page))
    assert kit.open_kit(f"scanned:\n{payload}\n", PASS).key == KEK.key


def test_typed_back_block_tolerates_case_spacing_and_lookalikes(page):
    typed = []
    for line in block_lines(page):
        number, rest = line.split(maxsplit=1)
        squashed = "".join(rest.split()).lower().replace("o", "0").replace("i", "1")
        typed.append(f"  {number}:   {squashed}  \n")
    assert kit.open_kit("\n".join(typed), PASS).key == KEK.key


def test_a_typo_is_reported_with_its_line_number(page):
    lines = page.splitlines()
    at = lines.index(kit.BEGIN) + 3  # kit line 03
    chars = list(lines[at])
    chars[6] = "B" if chars[6] != "B" else "C"
    lines[at] = "".join(chars)
    with pytest.raises(ValidationError, match="line 03: checksum does not match"):
        kit.read_kit("\n".join(lines))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_single_character_typo_is_caught_before_the_passphrase(page, data):
    lines = block_lines(page)
    number = data.draw(st.integers(1, len(lines)), label="line")
    line = lines[number - 1]
    positions = [i for i, c in enumerate(line) if i >= 4 and c != " "]
    at = data.draw(st.sampled_from(positions), label="position")
    new = data.draw(st.sampled_from([c for c in "ABCDEFGHJKLMNPQRSTUVWXYZ234567" if c != line[at]]))
    lines[number - 1] = line[:at] + new + line[at + 1:]
    with pytest.raises(ValidationError, match=f"line {number:02d}"):
        kit.read_kit("\n".join(lines))


def test_missing_and_swapped_lines_are_named(page):
    lines = block_lines(page)
    with pytest.raises(ValidationError, match="line 04 is missing"):
        kit.read_kit("\n".join(lines[:3] + lines[4:]))
    with pytest.raises(ValidationError, match="line 02 appears twice or out of order|line 02 is missing"):
        kit.read_kit("\n".join([lines[0], lines[2], lines[1], *lines[3:]]))
    with pytest.raises(ValidationError, match="expected 95"):
        kit.read_kit("\n".join(lines[:-1]))


def test_renumbered_line_fails_its_checksum(page):
    lines = block_lines(page)
    swapped = [lines[0], "02" + lines[2][2:], "03" + lines[1][2:], *lines[3:]]
    with pytest.raises(ValidationError, match="line 02: checksum"):
        kit.read_kit("\n".join(swapped))


def test_wrong_passphrase_is_a_clear_crypto_error(page):
    with pytest.raises(CryptoError, match="^wrong passphrase or damaged kit$"):
        kit.open_kit(page, PASS + "!")


def test_kit_is_bound_to_its_kek_id():
    blob = kit.seal_kek(KEK, PASS, work=WORK)
    forged = kit.KitBlob(blob.version, blob.work, blob.r, blob.p, "0" * 16, blob.salt,
                         blob.nonce, blob.sealed)
    with pytest.raises(CryptoError, match="wrong passphrase or damaged kit"):
        kit.open_kit(kit.qr_payload(forged), PASS)


def test_damaged_blob_with_valid_line_checksums_is_caught_by_the_whole_kit_check():
    raw = bytearray(kit.seal_kek(KEK, PASS, work=WORK).to_bytes())
    raw[40] ^= 1
    with pytest.raises(ValidationError, match="whole-kit checksum"):
        kit.read_kit(kit.QR_PREFIX + base64.b32encode(bytes(raw)).decode())


def test_weak_kdf_parameters_in_a_kit_are_refused():
    blob = kit.seal_kek(KEK, PASS, work=WORK)
    weak = kit.KitBlob(blob.version, 10, blob.r, blob.p, blob.kek_id, blob.salt, blob.nonce,
                       blob.sealed)
    with pytest.raises(ValidationError, match="key-derivation parameters"):
        kit.read_kit(kit.qr_payload(weak))


@pytest.mark.parametrize("bad", ["", "short pass", "11 chars!!!"])
def test_passphrase_must_be_at_least_12_characters(bad):
    with pytest.raises(ValidationError, match="at least 12 characters"):
        kit.export_kit(KEK, bad, practice_name="P", work=WORK)


def test_passphrase_is_unicode_normalised():
    composed, decomposed = "caf\u00e9 au lait noir", "cafe\u0301 au lait noir"
    text = kit.export_kit(KEK, composed, practice_name="P", work=WORK)
    assert kit.open_kit(text, decomposed).key == KEK.key


def test_text_that_is_not_a_kit_is_a_validation_error():
    with pytest.raises(ValidationError, match="no kit lines"):
        kit.read_kit(f"{kit.BEGIN}\n{kit.END}\n")
    with pytest.raises(ValidationError, match="END marker"):
        kit.read_kit(f"{kit.BEGIN}\n01 ABCD\n")


# -- against a database ------------------------------------------------------------------

def test_kit_proves_it_unwraps_the_database_keys_without_the_key_file(ctx, settings):
    seed(ctx.engine, ctx.keyring, clients=2)
    text = kit.export_kit(ctx.keyring.primary, PASS, practice_name="P", work=WORK)
    settings.keys.kek_file.unlink()  # the disaster the kit is for

    result = kit.test_kit(ctx.engine, text, PASS, actor="test:kit")
    assert result.ok and result.kit_kek_id == ctx.keyring.kek_id
    assert result.keys_covered == result.keys_total == 4
    assert sorted(result.unwrapped) == ["blind_index", "client", "system"]
    t = AuditLog.__table__
    with transaction(ctx.engine, read_only=True) as conn:
        (details,) = conn.execute(select(t.c.details).where(t.c.action == "VERIFY")).scalars()
    assert json.loads(details)["kek_id"] == ctx.keyring.kek_id


def test_kit_for_another_kek_fails_the_test_naming_both_ids(ctx):
    seed(ctx.engine, ctx.keyring, clients=1)
    text = kit.export_kit(KEK, PASS, practice_name="P", work=WORK)
    result = kit.test_kit(ctx.engine, text, PASS)
    assert not result.ok and result.keys_covered == 0
    assert KEK.kek_id in result.message and ctx.keyring.kek_id in result.message


def test_kit_from_before_a_kek_rotation_no_longer_opens_the_database(ctx):
    seed(ctx.engine, ctx.keyring, clients=1)
    old_text = kit.export_kit(ctx.keyring.primary, PASS, practice_name="P", work=WORK)
    kek_rotation.rotate_kek(ctx, actor="test:kit")
    assert not kit.test_kit(ctx.engine, old_text, PASS).ok
    new_text = kit.export_kit(ctx.keyring.primary, PASS, practice_name="P", work=WORK)
    assert kit.test_kit(ctx.engine, new_text, PASS).ok


def test_kit_test_detects_a_tampered_key_record(ctx):
    from sqlalchemy import update

    from strongroom.core.db.models import DataKey, KeyPurpose

    seed(ctx.engine, ctx.keyring, clients=1)
    keys = DataKey.__table__
    with transaction(ctx.engine) as conn:
        conn.execute(update(keys).where(keys.c.purpose == KeyPurpose.SYSTEM)
                     .values(wrapped_key=b"\0" * 60))
    text = kit.export_kit(ctx.keyring.primary, PASS, practice_name="P", work=WORK)
    with pytest.raises(CryptoError, match="failed to unwrap"):
        kit.test_kit(ctx.engine, text, PASS)


def test_recover_writes_an_owner_only_key_file_that_opens_the_data(ctx, settings, tmp_path):
    seed(ctx.engine, ctx.keyring, clients=1)
    text = kit.export_kit(ctx.keyring.primary, PASS, practice_name="P", work=WORK)
    out = tmp_path / "recovered.key"
    kek = kit.recover(text, PASS, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert read_kek_file(out).key == ctx.keyring.primary.key and kek.kek_id == ctx.keyring.kek_id
    values = decrypt_all(ctx.engine, Keyring([read_kek_file(out)]))
    assert values["clients.first_name"] == ["Ada"]
    with pytest.raises(KeyUnavailableError, match="refusing to overwrite"):
        kit.recover(text, PASS, out)


def test_recover_with_a_wrong_passphrase_writes_nothing(tmp_path, page):
    out = tmp_path / "recovered.key"
    with pytest.raises(CryptoError):
        kit.recover(page, "not the passphrase", out)
    assert not out.exists()


def test_generated_keks_round_trip_through_a_kit():
    key = generate_kek()
    text = kit.export_kit(Kek(key, "t"), PASS, practice_name="P", work=WORK)
    assert kit.open_kit(text, PASS).key == key
