"""glibc's allocator tuned for a process that keeps and drops large buffers: the query API,
whose tenants' search snapshots (megabytes of arrays each) are loaded and evicted all day.

By default glibc raises its mmap threshold after the first large buffer is freed (up to 32 MB),
so later snapshot arrays come from the heap, and it gives threads arenas of their own (up to
eight per core): what an evicted snapshot freed then stays in the process, scattered in holes
over many arenas, and the resident set outgrows the snapshot budget. Measured with the 1,000
tenants of ``bench/tenants_api.py`` searched by 32 threads in one process under the default
512 MB budget: 1,011 MB resident by default, 725 MB with ``bound_malloc()``
(docs/benchmarks.md, "Many tenants").
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # <malloc.h>
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, kept: buffers above it are mmapped
ARENAS = 2


def bound_malloc() -> bool:
    """Fix the mmap threshold (a freed snapshot array goes back to the system whole) and cap
    the arenas; call before the process starts threads. False where the C library is not
    glibc (nothing changes there)."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_ARENA_MAX, ARENAS))
