"""Mini-batches over a data set."""

from __future__ import annotations

import numpy as np


def iterate_minibatches(x: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator | None = None):
    """Yield ``(x_batch, y_batch)`` pairs covering every sample once.

    Parameters
    ----------
    x : ndarray of shape `(N, ...)`
    y : ndarray of shape `(N,)`
    batch_size : int
        The last batch holds the remainder (it may be smaller).
    rng : np.random.Generator, optional
        When given, the order is a fresh permutation drawn from it; otherwise the data's own order.
    """
    if len(x) != len(y):
        raise ValueError(f"iterate_minibatches: inconsistent numbers of samples: {[len(x), len(y)]}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"iterate_minibatches: batch_size must be a positive integer, got {batch_size!r}")
    order = rng.permutation(len(x)) if rng is not None else None
    for start in range(0, len(x), batch_size):
        if order is None:
            yield x[start : start + batch_size], y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]
