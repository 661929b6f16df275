"""Element-wise activations and the numerically stable softmax family."""

from __future__ import annotations

import numpy as np


def relu_forward(x: np.ndarray):
    """``out = max(x, 0)``; the cache is the mask ``x > 0``."""
    mask = x > 0
    return x * mask, mask


def relu_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``dx = dout * [x > 0]``: the subgradient 0 is taken at ``x == 0``, as PyTorch does."""
    return dout * mask


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log softmax(z) = z - max(z) - log(sum(exp(z - max(z))))``.

    Subtracting the maximum first (log-sum-exp) keeps ``exp`` at or below 1, so logits of +-1e4 stay finite.
    """
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Row-wise probabilities, computed stably as ``exp(log_softmax(z))``."""
    return np.exp(log_softmax(logits, axis=axis))
