"""The C allocator's tuning for a process that holds image-sized buffers (§5.4): glibc malloc serves them
from its heap and keeps what is freed for the next request, instead of fresh pages that each fault when
first written (measured: about 2,000 page faults per 16 MiB pass-through, half of its CPU in the kernel).
"""

from __future__ import annotations

import ctypes

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap (a 16 MiB image is a 21 MiB answer, a Gemini 4K one 27 MiB).
# glibc's own adaptive threshold stops at 32 MiB, and older versions refuse more than that.
_HEAP_BLOCKS_UP_TO = (64 << 20, 32 << 20)


def keep_freed_memory(keep_bytes: int) -> bool:
    """Ask glibc to keep up to `keep_bytes` of freed heap memory, and to serve large blocks from the heap.

    False, and nothing changed, when `keep_bytes` is 0 or the C library is not glibc (e.g. musl).
    """
    if keep_bytes <= 0:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if not any(mallopt(_M_MMAP_THRESHOLD, size) for size in _HEAP_BLOCKS_UP_TO):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, min(keep_bytes, 2**31 - 1)))
