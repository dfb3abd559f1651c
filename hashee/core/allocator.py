"""Keep freed memory in the process, so CPU inference does not page-fault its buffers in again at every layer.

glibc's ``malloc`` serves blocks over its mmap threshold (128 KiB to start) with fresh ``mmap`` pages and gives
the top of the heap back to the OS once more than the trim threshold is free there. A layer's activations are
such blocks (SST-2, batch 32, MiniLM: 0.3-1.2 MB each), allocated and freed again at every layer, so the
pages of each are faulted in and zeroed by the kernel every time: 28,000-58,000 minor page faults per pass over
SST-2 dev for the full model, 0 after :func:`keep_freed_memory` (docs/performance.md). Raising both thresholds
keeps those pages in the heap for the next layer. The process then holds on to the memory it freed (up to the
trim threshold), which is what a benchmark process wants. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc's malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest mmap threshold on 64-bit systems (blocks above still use mmap)
TRIM_THRESHOLD = 1024 * 1024 * 1024  # free memory the heap may keep at its top before giving it back
_state = {"kept": False}


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True where it took effect (Linux with glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # no C library by that name, or one without mallopt (musl)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _state["kept"] = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _state["kept"]


def allocator_setting() -> str:
    """What a run's timings ran under, for its record: ``keep_freed_memory`` or ``default``."""
    return "keep_freed_memory" if _state["kept"] else "default"
