"""The helper process that opens a bulk read's PHI columns (core.crypto.field_opener):
it opens exactly what a FieldCipher sealed, in the same order, and answers None for any
column that is not the usual case, which the reader then opens field by field."""
from __future__ import annotations

import os
import uuid

from strongroom.core.crypto.field_opener import FieldOpener, open_batch
from strongroom.core.crypto.fields import FieldCipher


def sealed_batch(rows: int = 40):
    """Rows with their own keys (two rows per key), two PHI columns, one with gaps."""
    raw_keys = {}
    row_keys, rids, names, notes, expected = [], [], [], [], ([], [])
    for n in range(rows):
        key = os.urandom(32) if n % 2 == 0 else raw_keys[row_keys[-1]]
        key_id = uuid.uuid4() if n % 2 == 0 else uuid.UUID(bytes=row_keys[-1])
        cipher = FieldCipher(key_id, key)
        raw_keys[key_id.bytes] = key
        row_id = uuid.uuid4()
        name, note = f"Zoë {n}", None if n % 3 == 0 else f"note, {n}\n" * n
        names.append(cipher.encrypt_text(name, "clients", "first_name", row_id))
        notes.append(None if note is None else cipher.encrypt_text(note, "clients", "notes", row_id))
        expected[0].append(name)
        expected[1].append(note)
        row_keys.append(key_id.bytes)
        rids.append(str(row_id).encode())
    columns = [(b"clients\0first_name\0", names), (b"clients\0notes\0", notes)]
    return raw_keys, row_keys, rids, columns, [list(e) for e in expected]


def test_a_batch_opens_to_what_was_sealed_with_gaps_kept():
    keys, row_keys, rids, columns, expected = sealed_batch()
    assert open_batch(keys, row_keys, rids, columns) == expected


def test_a_column_that_is_not_the_usual_case_is_left_to_the_reader():
    """Tampered, moved to another row, cut short: that column is None, the others open."""
    keys, row_keys, rids, columns, expected = sealed_batch()
    names, notes = columns[0][1], list(columns[1][1])
    tampered = list(names)
    tampered[3] = tampered[3][:-1] + bytes([tampered[3][-1] ^ 1])
    assert open_batch(keys, row_keys, rids, [(columns[0][0], tampered), columns[1]]) == [None, expected[1]]
    swapped = list(names)
    swapped[0], swapped[2] = swapped[2], swapped[0]      # another row's field (another key too)
    assert open_batch(keys, row_keys, rids, [(columns[0][0], swapped)]) == [None]
    moved = list(names)
    moved[0], moved[1] = moved[1], moved[0]              # same key, another row: fails authentication
    assert open_batch(keys, row_keys, rids, [(columns[0][0], moved)]) == [None]
    notes[1] = notes[1][:20]
    assert open_batch(keys, row_keys, rids, [(columns[1][0], notes)]) == [None]


def test_the_helper_process_opens_batches_in_turn_and_ends_with_close():
    opener = FieldOpener()
    try:
        for _ in range(3):
            keys, row_keys, rids, columns, expected = sealed_batch()
            assert opener.submit(keys, row_keys, rids, columns) and opener.busy
            assert opener.result() == expected and not opener.busy
    finally:
        opener.close()
    assert opener._process.returncode == 0


def test_a_helper_that_died_leaves_every_column_to_the_reader_and_is_not_asked_again():
    opener = FieldOpener()
    try:
        keys, row_keys, rids, columns, _ = sealed_batch()
        opener._process.kill()
        opener._process.wait()
        if opener.submit(keys, row_keys, rids, columns):     # the pipe took it before the helper was missed
            assert opener.result() == [None, None]
        assert not opener.submit(keys, row_keys, rids, columns)
    finally:
        opener.close()


def test_a_busy_helper_is_killed_by_close():
    opener = FieldOpener()
    keys, row_keys, rids, columns, _ = sealed_batch(400)
    opener.submit(keys, row_keys, rids, columns)
    opener.close()
    assert opener._process.returncode is not None
