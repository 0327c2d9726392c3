"""The process's memory allocator, set for the analysis commands: large numpy temporaries
reuse memory freed by the previous site instead of being mapped and unmapped each time.

With glibc's defaults every array above its (adaptive) mmap threshold gets fresh pages
from the kernel and gives them back when freed, so an analysis that allocates and frees
tens of MB per site spends much of its time in page faults: ``tlc-probe shift`` on a
40 M-row store spent 9.6 s of 26 s CPU in the kernel, 5.5 s with the settings below,
and its shift table took 12.4 s instead of 17.0 s (2 cores).
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameter numbers of glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 256 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Tell glibc's malloc (Linux) to serve allocations below ``mmap_threshold`` bytes from
    its heap and to keep up to ``trim_threshold`` bytes of freed memory for reuse (also
    growing the heap by ``mmap_threshold`` at a time). Peak RSS is unchanged: memory that
    was in use is reused, not returned. Returns True when every setting was accepted,
    False elsewhere (other platforms or C libraries), where nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    settings = (
        (_M_MMAP_THRESHOLD, mmap_threshold),
        (_M_TRIM_THRESHOLD, trim_threshold),
        (_M_TOP_PAD, mmap_threshold),
    )
    return all(mallopt(param, value) == 1 for param, value in settings)
