"""Keeping freed memory for reuse instead of handing it back to the OS after every training step.

A training step allocates and frees the same few multi-megabyte arrays again and again. glibc serves blocks above
its mmap threshold with fresh ``mmap`` calls and returns them on free, so every step pays the page faults of
touching new memory (a third of the notebook net's step time, docs/parallel.md). Raising the mmap and trim
thresholds (``mallopt``, the same knobs as the ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``
environment variables) lets freed blocks be reused. Peak memory is unchanged; the process just keeps its peak until
it exits.

Applied once per process, by the first :class:`~convnp.parallel.threads.DataParallel` (which every training step
and prediction goes through), :class:`~convnp.parallel.processes.ProcessDataParallel` or
:class:`~convnp.parallel.mpi.DistributedDataParallel`. ``CONVNP_NO_MALLOPT=1`` turns it off; elsewhere than glibc
it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
_done = False


def keep_freed_memory(mmap_threshold: int = 256 * 2**20, trim_threshold: int = 512 * 2**20) -> bool:
    """Raise glibc's mmap and trim thresholds once; returns whether it took effect."""
    global _done
    if _done or os.environ.get("CONVNP_NO_MALLOPT"):
        return False
    _done = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
    ok &= mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    ok &= mallopt(M_TOP_PAD, 64 * 2**20) == 1
    return bool(ok)
