"""core.bulk: what a bulk walk does to the cyclic collector is undone when it ends; a
process that is ending skips the collector's last walk of its heap."""
from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

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


def test_an_ending_process_sets_its_heap_aside_once_and_only_at_exit():
    """skip_final_collection: nothing frozen while the process runs (the CLI's main runs
    inside test processes too), one hook however often it is asked, and by the time the
    interpreter's last collection would run, the heap is set aside. Run in a child, since
    the hook fires only at exit; a hook registered before runs after it (atexit: last in,
    first out), as logging's flush does, and sees the heap frozen."""
    child = textwrap.dedent("""
        import atexit, gc
        atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))
        from strongroom.core.bulk import heap_frozen, skip_final_collection
        before = atexit._ncallbacks()
        skip_final_collection()
        skip_final_collection()
        print("hooks added:", atexit._ncallbacks() - before)
        print("frozen while running:", gc.get_freeze_count() > 0)
        with heap_frozen():          # a walk that ends before exit unfreezes what it froze
            pass
        print("frozen after a walk:", gc.get_freeze_count() > 0)
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["hooks added: 1", "frozen while running: False",
                                        "frozen after a walk: False", "frozen at exit: True"]
