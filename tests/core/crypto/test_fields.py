"""Field encryption: round trip, tamper evidence and binding to table/column/row."""
from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.core.crypto.fields import MIN_CIPHERTEXT, FieldCipher, associated_data, key_id_of
from strongroom.core.errors import CryptoError

KEY_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
CIPHER = FieldCipher(KEY_ID, bytes(range(32)))
ROW = uuid.UUID("11111111-1111-4111-8111-111111111111")
names = st.sampled_from(["clients", "therapy_sessions", "client_files", "users"])
fields = st.sampled_from(["first_name", "notes", "ssn", "file_name", "totp_secret"])


@given(value=st.text(), table=names, field=fields, row=st.uuids())
def test_any_text_round_trips(value, table, field, row):
    blob = CIPHER.encrypt_text(value, table, field, row)
    assert CIPHER.decrypt_text(blob, table, field, row) == value


@given(value=st.text(min_size=8))
def test_ciphertext_names_its_key_and_hides_the_value(value):
    blob = CIPHER.encrypt_text(value, "clients", "notes", ROW)
    assert key_id_of(blob) == KEY_ID
    assert value.encode() not in blob


def test_same_value_encrypts_differently_each_time():
    assert (CIPHER.encrypt_text("Ada", "clients", "first_name", ROW)
            != CIPHER.encrypt_text("Ada", "clients", "first_name", ROW))


@settings(max_examples=200)
@given(value=st.text(max_size=40), data=st.data())
def test_flipping_any_single_byte_is_detected(value, data):
    blob = bytearray(CIPHER.encrypt_text(value, "clients", "notes", ROW))
    index = data.draw(st.integers(0, len(blob) - 1), label="byte")
    flip = data.draw(st.integers(1, 255), label="xor")
    blob[index] ^= flip
    with pytest.raises(CryptoError):
        CIPHER.decrypt_text(bytes(blob), "clients", "notes", ROW)


@given(value=st.text(max_size=40), other=st.uuids())
def test_ciphertext_moved_to_another_row_fails(value, other):
    blob = CIPHER.encrypt_text(value, "clients", "notes", ROW)
    with pytest.raises(CryptoError, match="moved from another row"):
        CIPHER.decrypt_text(blob, "clients", "notes", other)


def test_ciphertext_moved_to_another_column_fails():
    blob = CIPHER.encrypt_text("123-45-6789", "clients", "ssn", ROW)
    with pytest.raises(CryptoError, match="clients.notes of row"):
        CIPHER.decrypt_text(blob, "clients", "notes", ROW)


def test_ciphertext_moved_to_another_table_fails():
    blob = CIPHER.encrypt_text("session notes", "therapy_sessions", "notes", ROW)
    with pytest.raises(CryptoError):
        CIPHER.decrypt_text(blob, "clients", "notes", ROW)


def test_error_names_the_place_but_not_the_value():
    blob = CIPHER.encrypt_text("Lovelace", "clients", "last_name", ROW)
    with pytest.raises(CryptoError) as err:
        CIPHER.decrypt_text(blob, "clients", "first_name", ROW)
    assert str(ROW) in str(err.value) and "Lovelace" not in str(err.value)


def test_ciphertext_from_another_key_is_refused_by_key_id():
    other = FieldCipher(uuid.uuid4(), os.urandom(32))
    blob = other.encrypt_text("x", "clients", "notes", ROW)
    with pytest.raises(CryptoError, match=f"sealed with key {other.key_id}"):
        CIPHER.decrypt_text(blob, "clients", "notes", ROW)


def test_same_key_id_with_different_key_material_fails_authentication():
    impostor = FieldCipher(KEY_ID, os.urandom(32))
    blob = impostor.encrypt_text("x", "clients", "notes", ROW)
    with pytest.raises(CryptoError, match="failed authentication"):
        CIPHER.decrypt_text(blob, "clients", "notes", ROW)


@pytest.mark.parametrize("blob", [b"", b"\x01" * (MIN_CIPHERTEXT - 1), b"\x02" + b"\0" * 60])
def test_malformed_ciphertext_is_a_crypto_error(blob):
    with pytest.raises(CryptoError, match="malformed"):
        key_id_of(blob)
    with pytest.raises(CryptoError):
        CIPHER.decrypt(blob, associated_data("clients", "notes", ROW))


def test_data_key_must_be_256_bits():
    with pytest.raises(CryptoError, match="not 256 bits"):
        FieldCipher(KEY_ID, b"short")


@settings(max_examples=50)
@given(st.binary(max_size=5000))
def test_sealing_into_a_buffer_reads_back_both_ways(value):
    """seal_into/open_into (file chunks, into reused buffers) keep the layout of
    encrypt/decrypt: either one opens what the other sealed."""
    cipher = FieldCipher(uuid.uuid4(), os.urandom(32))
    aad = associated_data("t", "c", "r")
    out = bytearray(len(value) + MIN_CIPHERTEXT + 7)      # larger than needed: the count says how much
    n = cipher.seal_into(memoryview(value), aad, out)
    assert n == len(value) + MIN_CIPHERTEXT
    assert cipher.decrypt(bytes(out[:n]), aad) == value
    blob = cipher.encrypt(value, aad)
    plain = bytearray(len(blob) - MIN_CIPHERTEXT)
    assert cipher.open_into(memoryview(blob), aad, plain) == len(value) and plain == value


def test_opening_into_a_buffer_refuses_tampering_another_key_and_another_place():
    cipher = FieldCipher(uuid.uuid4(), os.urandom(32))
    aad = associated_data("t", "c", "r")
    blob = bytearray(cipher.encrypt(b"x" * 100, aad))
    out = bytearray(100)
    with pytest.raises(CryptoError):
        cipher.open_into(blob, associated_data("t", "c", "other"), out)
    with pytest.raises(CryptoError):
        FieldCipher(uuid.uuid4(), os.urandom(32)).open_into(blob, aad, out)
    blob[50] ^= 1
    with pytest.raises(CryptoError):
        cipher.open_into(blob, aad, out)
