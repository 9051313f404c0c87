"""core.sync.stamp: how a row's field dots are stored and read back."""
from __future__ import annotations

from hypothesis import given, strategies as st

from strongroom.core.sync.stamp import pack_dots, unpack_dots

FIELDS = [f"f{i}" for i in range(6)]


def test_a_row_set_by_one_edit_stores_its_dot_once():
    assert pack_dots({f: ["site-a", 7] for f in FIELDS}) == {"*": ["site-a", 7]}


def test_the_most_common_dot_is_stored_once_and_the_others_by_field():
    dots = {f: ["site-a", 7] for f in FIELDS} | {"f2": ["site-b", 9]}
    assert pack_dots(dots) == {"*": ["site-a", 7], "f2": ["site-b", 9]}


@given(st.lists(st.tuples(st.sampled_from(["site-a", "site-b", "site-c"]), st.integers(1, 4)),
                min_size=len(FIELDS), max_size=len(FIELDS)))
def test_packed_dots_read_back_as_they_were(edits):
    dots = {f: list(edit) for f, edit in zip(FIELDS, edits)}
    assert unpack_dots(pack_dots(dots), FIELDS) == dots


@given(st.lists(st.tuples(st.sampled_from(["site-a", "site-b", "site-c"]), st.integers(1, 3)),
                min_size=len(FIELDS), max_size=len(FIELDS)), st.booleans())
def test_the_stored_dot_is_the_most_common_ties_to_the_greatest(edits, as_tuples):
    """One packing for one set of dots, whichever shortcut found it (an edited row's first
    dot holding most fields is taken without counting), lists or tuples alike."""
    dots = {f: (tuple(edit) if as_tuples else list(edit)) for f, edit in zip(FIELDS, edits)}
    counts = {}
    for edit in edits:
        counts[edit] = counts.get(edit, 0) + 1
    common = max(counts, key=lambda d: (counts[d], d))
    assert pack_dots(dots) == {"*": list(common)} | {f: d for f, d in dots.items() if tuple(d) != common}
