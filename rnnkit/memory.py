"""The process's memory allocator: keep freed blocks for the next training step.

glibc's malloc hands large freed blocks back to the system (``munmap``, or by
trimming the top of the heap). Training frees and allocates the same sizes
every step (gradients, logits), so each step then pays a page fault for every
4 KiB page it touches again: on this project's machines ~1.5 µs each, ~4 ms
for the 10 MB gradient of a 10,000-word softmax layer, a fifth of a
one-sentence update. :func:`keep_freed_memory` asks malloc to keep such
blocks (as the environment variables ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` would). rnnkit's commands call it once; it is a
setting of the whole process, like the thread count, and changes no result.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # blocks up to this size come from the heap (glibc's maximum)
TRIM_THRESHOLD = 1 << 30  # free memory at the heap's top kept up to this size


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks up to 32 MiB for reuse. Returns whether
    the settings took (False where the C library is not glibc)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
