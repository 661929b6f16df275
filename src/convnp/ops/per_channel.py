"""Per-channel arithmetic on channels-last arrays, laid out as one long row per sample.

Channels-last ``(N, ..., C)`` data broadcast against a ``(C,)`` vector makes NumPy loop over only ``C`` values at a
time (8 or 16 in the zoo's first layers), and the per-loop cost swamps the arithmetic. Viewing the data as one long
row per sample (:func:`wide`) and tiling the vector to that row's width (:func:`tiled`) gives loops thousands of
values long. Used by BatchNorm and by the convolution's bias; the timings are in ``docs/performance.md``.
"""

from __future__ import annotations

import numpy as np


def wide(a: np.ndarray) -> np.ndarray:
    """``a`` of shape ``(N, ..., C)`` as ``(N, k * C)``, one row per sample, ``k`` = values per channel per sample.

    A view for contiguous ``a``.
    """
    return a.reshape(a.shape[0], -1)  # (N, k*C)


def tiled(v: np.ndarray, width: int) -> np.ndarray:
    """The ``(C,)`` vector ``v`` repeated to match a wide row of ``width = k * C`` values (channel fastest)."""
    return np.tile(v, width // v.shape[0])


def channel_sum(a: np.ndarray, C: int) -> np.ndarray:
    """Per-channel sums of a wide ``(N, k * C)`` array: shape ``(C,)``.

    The sum over rows is a matrix-vector product with a ones vector, which goes through BLAS (blocked, so also more
    accurate than one running total per column); the remaining ``(k, C)`` fold is small.
    """
    return (np.ones(a.shape[0], dtype=a.dtype) @ a).reshape(-1, C).sum(axis=0)  # (k*C,) -> (k, C) -> (C,)


def channel_dot(a: np.ndarray, b: np.ndarray, C: int) -> np.ndarray:
    """Per-channel sums of ``a * b`` for wide ``(N, k * C)`` arrays: shape ``(C,)``.

    ``einsum`` sums the products down each column without writing them out (a third of the memory traffic of
    ``channel_sum(a * b)``); the ``(k, C)`` fold that follows is small.
    """
    return np.einsum("ij,ij->j", a, b).reshape(-1, C).sum(axis=0)  # (k*C,) -> (k, C) -> (C,)
