"""The allocator's tuning: image-sized buffers freed by one request are reused by the next, without
fresh pages (counted as the process's minor page faults, in a child process: the tuning is per process)."""

from __future__ import annotations

import subprocess
import sys

from gateway.allocator import keep_freed_memory

_ROUNDS = """
import resource, sys
from gateway.allocator import keep_freed_memory
if sys.argv[1] == "tuned":
    assert keep_freed_memory(256 << 20)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def round_():  # four requests' answers at once, written, then all freed
    buffers = [bytearray(b"x") * (16 << 20) for _ in range(4)]
    del buffers
round_()
before = faults()
for _ in range(3):
    round_()
print(faults() - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _ROUNDS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_freed_image_buffers_are_reused_without_new_pages() -> None:
    pages = 3 * 4 * (16 << 20) // 4096  # what three rounds write
    assert _faults("tuned") < pages // 20
    assert _faults("default") > pages // 2  # glibc's defaults give the top of the heap back each time


def test_nothing_is_changed_when_asked_to_keep_nothing() -> None:
    assert keep_freed_memory(0) is False
