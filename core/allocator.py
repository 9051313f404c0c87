"""The C allocator's trimming, set once for a process that streams batches.

Every bulk path here (exports, sync, backups, file transfers) works batch by batch: it
allocates a few megabytes of rows, text and buffers, writes them out and frees them,
then does the same again. glibc's malloc gives the freed top of its heap back to the
kernel as soon as it exceeds 128 KiB (and serves blocks from 128 KiB up with fresh
mmaps), so each batch touched new pages and took a page fault for every 4 KiB of them:
a 300,000-session NDJSON export took 745,000 minor faults, about 1 s of kernel time
and a fifth of its CPU on a VM (encoding a batch of 500 rows cost 8 µs a row against
0.6 µs with the memory kept). Keeping up to TRIM_THRESHOLD of freed memory for the next
batch, and serving blocks under MMAP_THRESHOLD from the heap, takes that to 20,000.

Peak memory is unchanged (what is kept was in use a moment before); a process idle
after a large job holds at most TRIM_THRESHOLD + TOP_PAD more than it needs per arena.
So that "per arena" stays small, the threads share at most ARENA_MAX arenas (glibc
makes up to eight per core, each keeping its own freed buffers: the daemon's peak over
a 1 GiB download was 165 MB with them and 142 MB with two; Python threads take turns
under the GIL, so they seldom wait on the allocator's lock). Other C libraries (musl,
macOS) have no mallopt: nothing is changed there.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt(3) parameters (malloc.h): values are bytes.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -2, -3, -8
TRIM_THRESHOLD = 64 * 1024 * 1024
TOP_PAD = 16 * 1024 * 1024
MMAP_THRESHOLD = 32 * 1024 * 1024        # glibc's largest on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
ARENA_MAX = 2

_done = False


def keep_freed_memory() -> bool:
    """Set the thresholds once per process; whether the C library took them (False on a
    C library without mallopt, or if it refused a value)."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # The mmap threshold first: setting any of them turns glibc's own adjustment off.
    taken = all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD),
        (M_ARENA_MAX, ARENA_MAX)))
    if not taken:
        log.info("the C allocator refused a trim setting; batches will fault their pages in again")
    _done = taken
    return taken
