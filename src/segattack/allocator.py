"""glibc's allocator tuned for attacks on the CPU: the tensors an attack frees and allocates again at every step stay in
the heap instead of coming back as fresh, zero-filled ``mmap`` pages. The command line calls ``tune_allocator`` once
per process; benchmarks call it to measure as the command line runs."""

from __future__ import annotations

import ctypes
import os
import platform
import sys

__all__ = ["tune_allocator", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Allocations up to this size come from the heap (glibc's upper limit for the mmap threshold on 64-bit systems).
MMAP_THRESHOLD = 32 * 2**20
#: Free memory kept at the top of the heap instead of being given back to the system (mallopt takes a C int).
TRIM_THRESHOLD = 2**31 - 1

_tuned: bool | None = None


def tune_allocator() -> bool:
    """Make glibc's malloc keep the CPU tensors that an attack frees and allocates again at every step in the heap:
    allocations up to ``MMAP_THRESHOLD`` (32 MB) come from the heap rather than from fresh ``mmap`` pages, and up to
    2 GB of freed memory stays in the process (``TRIM_THRESHOLD``). Otherwise each step pays for zero-filled pages
    again: on the 2-core CPU the demo's experiment took 101.8 s instead of 107.4-116.4 s, and the network's own pass
    was 29-53% slower after the run than before it (``benchmarks/bench_experiment.py``). The process keeps its peak
    memory until it exits. What ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` in the environment set is
    left as it is.

    Returns whether the allocator was tuned (False on other C libraries and platforms); called once per process by
    the command line, a no-op after the first call.
    """
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = True
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and ok
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        ok = bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and ok
    _tuned = ok
    return ok
