"""core.bulk: what a bulk walk does to the cyclic collector is undone when it ends."""
from __future__ import annotations

import gc

from strongroom.core.bulk import heap_frozen


def test_heap_frozen_sets_the_heap_aside_until_the_last_walk_ends():
    assert gc.get_freeze_count() == 0
    with heap_frozen():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with heap_frozen():                      # an overlapping walk
            pass
        assert gc.get_freeze_count() >= frozen   # still set aside for the outer walk
    assert gc.get_freeze_count() == 0


def test_heap_frozen_gives_the_heap_back_when_the_walk_fails():
    try:
        with heap_frozen():
            raise RuntimeError("walk failed")
    except RuntimeError:
        pass
    assert gc.get_freeze_count() == 0
