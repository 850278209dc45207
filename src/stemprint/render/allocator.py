"""Keep large audio buffers on the heap instead of fresh ``mmap`` pages (glibc only).

Every block allocates temporaries of a few hundred kilobytes (a stereo float64 block of 16384
samples is 256 KiB). glibc serves allocations above its mmap threshold (128 KiB, raised
dynamically) with a fresh ``mmap`` and returns them with ``munmap``, and trims the heap top
whenever 128 KiB are free: the render then spends its time in page faults on memory it just
gave back. Measured on the 32-track plain-sum benchmark, one thread: 10.2-11.9 s with the
defaults, 5.9-6.8 s with these settings (the trim threshold matters as much as the mmap one;
trimming above 32 MiB instead of 128 KiB), the same peak RSS (``bench/README.md``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""``mallopt`` parameters, from glibc's ``malloc.h``."""

MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
"""Allocations below this come from the heap (glibc's own upper bound for the dynamic one)."""

TRIM_THRESHOLD_BYTES = 32 * 1024 * 1024
"""Free heap kept for reuse before it is returned to the system."""

_done = False


def tune_allocator() -> bool:
    """Set glibc's thresholds for this process (once); ``False`` where there is no glibc."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and ok
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok
