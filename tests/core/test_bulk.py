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
        # still set aside for the outer walk: unfreezing would make the count 0. (Not
        # `>= frozen`: a frozen object freed by its refcount leaves the count meanwhile.)
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_heap_frozen_gives_the_heap_back_when_the_walk_fails():
    try:
        with heap_frozen():
            raise RuntimeError("walk failed")
    except RuntimeError:
        pass
    assert gc.get_freeze_count() == 0


def test_collector_stays_paused_while_another_thread_still_holds_a_pause():
    """A sync pass reads the next batch in one thread while it applies one in another:
    the first to finish must not switch the collector back on under the other."""
    import gc
    import threading
    from strongroom.core.bulk import collector_paused
    assert gc.isenabled()
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with collector_paused():
            inside.set()
            release.wait(10)

    other = threading.Thread(target=hold)
    with collector_paused():
        other.start()
        assert inside.wait(10)
    try:
        assert not gc.isenabled()       # this block ended; the other thread's has not
    finally:
        release.set()
        other.join(10)
    assert gc.isenabled()
