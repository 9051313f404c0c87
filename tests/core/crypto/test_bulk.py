"""core.crypto.bulk.open_rows: many sealed values opened in one call, in C where built
and through `cryptography` where not, with one behaviour: the same plaintexts, None for
any value not of the usual shape (before anything is opened), InvalidTag for one that
fails authentication, UnicodeDecodeError for text that is not UTF-8."""
from __future__ import annotations

import os
import uuid

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.core.crypto import bulk
from strongroom.core.crypto.fields import FieldCipher

PREFIX = b"clients\0notes\0"


@pytest.fixture(params=["native", "cryptography"])
def way(request, monkeypatch):
    """Each test once through the C loop and once through `cryptography`."""
    if request.param == "native":
        if not bulk.NATIVE:
            pytest.skip("core/crypto/_gcm.c was not built here (test_the_c_loop_is_built_in_ci says where it must be)")
    else:
        monkeypatch.setattr(bulk, "NATIVE", False)
    return request.param


def one(keys, blobs, prefix, tails, heads, *, text: bool):
    """open_rows of a single column: its values, or None."""
    opened = bulk.open_rows(keys, [blobs], [prefix], tails, heads, text=text)
    return None if opened is None else opened[0]


def sealed(values: list[bytes], *, keys: list[bytes] | None = None, head: bytes = b"\x01" + b"k" * 16):
    """(keys, blobs, tails, heads) of `values` sealed as fields are: head | nonce | ct | tag."""
    keys = keys or [os.urandom(32) for _ in values]
    tails = [str(uuid.uuid4()).encode() for _ in values]
    blobs = []
    for key, value, tail in zip(keys, values, tails):
        nonce = os.urandom(12)
        blobs.append(head + nonce + AESGCM(key).encrypt(nonce, value, PREFIX + tail))
    return keys, blobs, tails, [head] * len(values)


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(max_size=300), max_size=20), shared_key=st.booleans())
def test_any_texts_open_to_themselves_both_ways(texts, shared_key):
    key = os.urandom(32)
    keys, blobs, tails, heads = sealed([t.encode() for t in texts], keys=[key] * len(texts) if shared_key else None)
    results = []
    for native in ([True] if bulk.NATIVE else []) + [False]:
        saved, bulk.NATIVE = bulk.NATIVE, native
        try:
            results.append(one(keys, blobs, PREFIX, tails, heads, text=True))
        finally:
            bulk.NATIVE = saved
    assert all(result == texts for result in results)


def test_bytes_come_back_as_bytes_and_an_empty_value_opens(way):
    keys, blobs, tails, heads = sealed([b"", b"\x00\xff binary"])
    assert one(keys, blobs, PREFIX, tails, heads, text=False) == [b"", b"\x00\xff binary"]


def test_tuples_are_taken_as_lists_are(way):
    keys, blobs, tails, heads = sealed([b"Ada", b"Grace"])
    assert one(tuple(keys), tuple(blobs), PREFIX, tuple(tails), tuple(heads), text=True) == ["Ada", "Grace"]


def test_nothing_to_open_is_an_empty_list(way):
    assert one([], [], PREFIX, [], [], text=True) == []
    assert bulk.open_rows([], [], [], [], [], text=True) == []


def test_a_wrapped_key_opens_with_no_head_and_its_aad_split_in_two(way):
    """How the keyring unwraps a batch of keys: no head, nonce first, AAD prefix + tail."""
    kek, dek = os.urandom(32), os.urandom(32)
    nonce = os.urandom(12)
    wrapped = nonce + AESGCM(kek).encrypt(nonce, dek, b"strongroom-dek\0" + b"id" * 8 + b"client")
    assert one([kek], [wrapped], b"strongroom-dek\0", [b"id" * 8 + b"client"], [b""], text=False) == [dek]


@pytest.mark.parametrize("spoil", ["another head", "too short", "not bytes", "short key", "key not bytes"])
def test_a_value_not_of_the_usual_shape_is_none_before_anything_opens(way, spoil):
    """None (the caller goes value by value and names the culprit), even when a value
    after it would fail authentication: nothing is opened first."""
    keys, blobs, tails, heads = sealed([b"Ada", b"Grace", b"Hopper"])
    blobs[2] = blobs[2][:-1] + bytes([blobs[2][-1] ^ 1])       # would raise InvalidTag if reached
    if spoil == "another head":
        blobs[1] = b"\x02" + blobs[1][1:]
    elif spoil == "too short":
        blobs[1] = heads[1] + b"n" * 12 + b"t" * 15
    elif spoil == "not bytes":
        blobs[1] = bytearray(blobs[1])
    elif spoil == "short key":
        keys[1] = keys[1][:16]
    else:
        keys[1] = bytearray(keys[1])
    assert one(keys, blobs, PREFIX, tails, heads, text=True) is None


@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag"])
def test_a_flipped_bit_anywhere_after_the_head_fails_authentication(way, where):
    keys, blobs, tails, heads = sealed([b"Ada", b"Grace Hopper"])
    at = {"nonce": 17 + 3, "ciphertext": 17 + 12 + 2, "tag": len(blobs[1]) - 1}[where]
    spoiled = bytearray(blobs[1])
    spoiled[at] ^= 0x20
    blobs[1] = bytes(spoiled)
    with pytest.raises(InvalidTag):
        one(keys, blobs, PREFIX, tails, heads, text=True)


def test_a_value_moved_to_another_row_or_column_fails_authentication(way):
    keys, blobs, tails, heads = sealed([b"Ada", b"Grace"])
    with pytest.raises(InvalidTag):
        one(keys, blobs, PREFIX, [tails[1], tails[0]], heads, text=True)
    with pytest.raises(InvalidTag):
        one(keys, blobs, b"clients\0ssn\0", tails, heads, text=True)


def test_the_wrong_key_fails_authentication(way):
    keys, blobs, tails, heads = sealed([b"Ada", b"Grace"])
    with pytest.raises(InvalidTag):
        one([keys[0], keys[0]], blobs, PREFIX, tails, heads, text=True)


def test_text_that_is_not_utf8_raises_as_decode_does(way):
    keys, blobs, tails, heads = sealed([b"Ada", b"\xff\xfe"])
    with pytest.raises(UnicodeDecodeError):
        one(keys, blobs, PREFIX, tails, heads, text=True)


def test_lists_of_different_lengths_are_refused(way):
    keys, blobs, tails, heads = sealed([b"Ada", b"Grace"])
    with pytest.raises(ValueError, match="differ in length"):
        one(keys[:1], blobs, PREFIX, tails, heads, text=True)
    with pytest.raises(ValueError, match="differ in length"):
        bulk.open_rows(keys, [blobs, blobs[:1]], [PREFIX, PREFIX], tails, heads, text=True)
    with pytest.raises(ValueError, match="differ in length"):
        bulk.open_rows(keys, [blobs], [PREFIX, PREFIX], tails, heads, text=True)


def test_what_field_cipher_seals_opens_in_bulk(way):
    """The format the rest of Strongroom writes (core.crypto.fields) is the one read."""
    key_id, key = uuid.uuid4(), os.urandom(32)
    cipher = FieldCipher(key_id, key)
    rows = [uuid.uuid4() for _ in range(5)]
    blobs = [cipher.encrypt_text(f"note {n}", "clients", "notes", row) for n, row in enumerate(rows)]
    head = b"\x01" + key_id.bytes
    opened = one([key] * 5, blobs, PREFIX, [str(r).encode() for r in rows], [head] * 5, text=True)
    assert opened == [f"note {n}" for n in range(5)]


def test_columns_open_under_their_own_prefixes_with_none_kept(way):
    """Several columns of one batch: each with its own associated-data prefix, values
    missing here and there, rows sharing a key (one client's rows) or not."""
    shared = os.urandom(32)
    keys = [shared, shared, os.urandom(32), os.urandom(32)]
    tails = [str(uuid.uuid4()).encode() for _ in keys]
    head = b"\x01" + b"k" * 16
    prefixes = [b"clients\0first_name\0", b"clients\0ssn\0", b"clients\0notes\0"]
    plain = [["Ada", "Grace", "Hedy", "Joan"], [None, "123-45-6789", None, "987-65-4321"], [None] * 4]

    def seal(key, value, aad):
        nonce = os.urandom(12)
        return head + nonce + AESGCM(key).encrypt(nonce, value.encode(), aad)

    columns = [[None if v is None else seal(k, v, prefix + t) for v, k, t in zip(values, keys, tails)]
               for values, prefix in zip(plain, prefixes)]
    assert bulk.open_rows(keys, columns, prefixes, tails, [head] * 4, text=True) == plain
    with pytest.raises(InvalidTag):        # the columns' prefixes swapped: not where they were sealed
        bulk.open_rows(keys, columns[:2], prefixes[1::-1], tails, [head] * 4, text=True)


def test_a_failure_in_the_last_cell_fails_the_whole_batch(way):
    keys, blobs, tails, heads = sealed([b"Ada", b"Grace", b"Hopper"])
    spoiled = bytearray(blobs[2])
    spoiled[-1] ^= 1
    with pytest.raises(InvalidTag):
        bulk.open_rows(keys, [blobs, blobs[:2] + [bytes(spoiled)]], [PREFIX, PREFIX], tails, heads, text=True)


def test_the_c_loop_is_built_in_ci():
    """CI installs OpenSSL's headers (.ci/run) and builds core/crypto/_gcm.c (`make
    install`): the speed of issue 14's bulk reads rests on it, so CI must not pass on
    the slow way unseen. Elsewhere its absence is allowed (the results are the same)."""
    if os.environ.get("CI"):
        assert bulk.NATIVE, "core/crypto/_gcm.c was not built: is libssl-dev installed?"
