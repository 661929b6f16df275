"""Metrics on predictions, pure NumPy."""

from __future__ import annotations

import numpy as np


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose largest logit (or probability) is at the true label.

    Parameters
    ----------
    logits : ndarray of shape `(N, K)`
    y : ndarray of shape `(N,)`
    """
    if logits.shape[0] != y.shape[0]:
        raise ValueError(f"accuracy: inconsistent numbers of samples: {[logits.shape[0], y.shape[0]]}")
    return float(np.mean(logits.argmax(axis=1) == y))
