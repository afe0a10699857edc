"""Settings of the whole process that the commands make before any work: the thread
count and the memory allocator. Neither changes a result; the library never makes them.

:func:`keep_freed_memory` asks glibc's malloc to keep freed blocks for the next
training step. By default malloc hands large freed blocks back to the system
(``munmap``, or by trimming the top of the heap); training frees and allocates the
same sizes every step (gradients, logits), so each step then pays a page fault for
every 4 KiB page it touches again. The settings are those of the environment
variables ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import torch

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


def set_threads(count: int | None) -> int:
    """torch's intra-op thread count: ``count``, or None for torch's default (every core).
    Returns the count in force."""
    if count is not None:
        torch.set_num_threads(count)
    return torch.get_num_threads()
