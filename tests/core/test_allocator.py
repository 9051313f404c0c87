"""core.allocator: a process that works batch by batch keeps freed memory for the next
batch instead of faulting fresh pages in for each one (glibc; elsewhere nothing)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from strongroom.core import allocator

# A batch of 500 two-kilobyte rows encoded and joined, 200 times: the shape of an export.
BATCHES = """
import resource, sys
if sys.argv[1] == "keep":
    from strongroom.core.allocator import keep_freed_memory
    assert keep_freed_memory()
rows = [("x" * 2000 + str(i)).encode() for i in range(500)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    body = b"\\n".join([bytes(bytearray(r)) for r in rows])
    del body
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", BATCHES, mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_batches_reuse_freed_memory_instead_of_faulting_pages_in_again():
    default, kept = _faults("default"), _faults("keep")
    assert kept * 5 < default, (default, kept)


def test_setting_it_again_is_harmless_and_says_it_holds():
    first = allocator.keep_freed_memory()
    assert allocator.keep_freed_memory() is first


def test_every_process_that_opens_a_context_keeps_freed_memory(settings):
    from strongroom.core.context import open_context
    ctx = open_context(settings)
    try:
        assert allocator._done is sys.platform.startswith("linux")
    finally:
        ctx.close()
