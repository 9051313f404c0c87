"""core.sync.stamp: how a row's field dots are stored and read back."""
from __future__ import annotations

from hypothesis import given, strategies as st

from strongroom.core.db.jsoncodec import loads
from strongroom.core.sync.stamp import compare, pack_dots, unpack_dots

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


# --- metadata held as the text it was stored as -----------------------------------------

def _stored_meta():
    from strongroom.core.db.jsoncodec import dumps
    from strongroom.core.sync.stamp import Meta
    dots = {f: ["site-a", 7] for f in FIELDS} | {"f2": ["site-b", 9]}
    hashes = {f: f"h{f}" for f in FIELDS}
    text = (dumps(pack_dots(dots)), dumps(hashes))
    return Meta("site-b", 9, {"site-a": 7, "site-b": 9}, None, None, version=4, stored=True,
                raw=(*text, FIELDS)), dots, hashes, text


def test_metadata_read_as_text_is_the_metadata_it_encodes():
    from strongroom.core.sync.stamp import Meta
    meta, dots, hashes, _text = _stored_meta()
    assert meta == Meta("site-b", 9, {"site-a": 7, "site-b": 9}, dots, hashes, version=4)
    assert (meta.dots, meta.hashes) == (dots, hashes)


def test_metadata_nobody_read_is_written_and_copied_as_the_same_text():
    from strongroom.core.db.jsoncodec import Encoded
    meta, _dots, _hashes, text = _stored_meta()
    copied = meta.copy()
    row = copied.as_row("t", None, FIELDS)
    assert (row["dots"], row["hashes"]) == text
    assert type(row["dots"]) is Encoded and type(row["hashes"]) is Encoded
    for held in (meta, copied):                     # the text read, shared, not encoded again
        assert all(a is b for a, b in zip(held.encode(FIELDS), text))


def test_metadata_once_read_is_written_from_what_it_holds_then():
    """A decoded dict may be changed in place: its text is not written after that."""
    meta, _dots, _hashes, _text = _stored_meta()
    meta.hashes["f0"] = "changed"
    assert loads(meta.encode(FIELDS)[1])["f0"] == "changed"
    row = meta.as_row("t", None)
    assert row["hashes"]["f0"] == "changed" and row["dots"] == pack_dots(meta.dots)


def test_setting_dots_drops_the_text_of_both():
    meta, dots, hashes, _text = _stored_meta()
    meta.dots = {f: ["site-c", 1] for f in FIELDS}
    assert loads(meta.encode(FIELDS)[0]) == {"*": ["site-c", 1]}
    assert meta.hashes == hashes and meta.dots["f0"] == ["site-c", 1]


def _order_by_definition(a: dict, b: dict) -> str:
    """Version vectors' order as defined: a site missing from a vector counts as 0."""
    sites = set(a) | set(b)
    less = any(a.get(s, 0) < b.get(s, 0) for s in sites)
    more = any(a.get(s, 0) > b.get(s, 0) for s in sites)
    return "concurrent" if less and more else "before" if less else "after" if more else "equal"


_vectors = st.dictionaries(st.sampled_from(["site-a", "site-b", "site-c"]), st.integers(0, 3), max_size=3)


@given(_vectors, _vectors)
def test_two_versions_are_ordered_by_their_vectors_as_defined(a, b):
    """Equal, before, after or concurrent; a site one vector lacks counts as 0 there, so
    {"site-a": 0} and {} are equal, and {"site-a": 1} is after {}."""
    assert compare(a, b) == _order_by_definition(a, b)
    assert compare(b, a) == {"before": "after", "after": "before"}.get(compare(a, b), compare(a, b))


def test_vectors_that_differ_only_by_sites_at_zero_are_equal():
    assert compare({"site-a": 0}, {}) == "equal"
    assert compare({"site-a": 2, "site-b": 0}, {"site-a": 2}) == "equal"
