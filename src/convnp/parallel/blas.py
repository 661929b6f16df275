"""Setting OpenBLAS's thread count at run time, through ctypes (what threadpoolctl does, without the dependency).

convnp's workers are the parallelism (threads, processes or MPI ranks, each on its shard of a batch), so each runs
BLAS in one thread; BLAS's own threads beside them only compete for the same cores.

NumPy's wheels bundle OpenBLAS under prefixed names (``scipy_openblas_set_num_threads64_``); distribution builds
use the plain ones. When no OpenBLAS can be found (another BLAS), the functions do nothing and say so by
returning None.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from pathlib import Path

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads")


@functools.cache
def _library():
    """The loaded OpenBLAS, found in this process's memory map (Linux) or next to NumPy."""
    import numpy as np

    candidates = []
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.split()[-1]
            if "openblas" in path.lower() and ".so" in path:
                candidates.append(path)
    except OSError:
        pass
    candidates += [str(p) for p in Path(np.__file__).parent.parent.glob("numpy.libs/*openblas*")]
    for path in dict.fromkeys(candidates):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, n) for n in _SETTERS if hasattr(lib, n)), None)
        getter = next((getattr(lib, n) for n in _GETTERS if hasattr(lib, n)), None)
        if setter is not None and getter is not None:
            getter.restype = ctypes.c_int
            return setter, getter
    return None


def get_blas_threads() -> int | None:
    """OpenBLAS's current thread count, or None if OpenBLAS was not found."""
    lib = _library()
    return None if lib is None else int(lib[1]())


@contextlib.contextmanager
def blas_threads(n: int):
    """OpenBLAS on ``n`` threads for the length of the block, its previous count restored after (nothing done if
    OpenBLAS was not found)."""
    previous = set_blas_threads(n)
    try:
        yield
    finally:
        if previous is not None:
            set_blas_threads(previous)


def set_blas_threads(n: int) -> int | None:
    """Set OpenBLAS's thread count; returns the previous count (None if OpenBLAS was not found)."""
    lib = _library()
    if lib is None:
        return None
    previous = int(lib[1]())
    if previous != n:  # OpenBLAS's setter costs tens of microseconds even when nothing changes
        lib[0](ctypes.c_int(int(n)))
    return previous
