"""Element-wise activations beyond ReLU: tanh, the logistic sigmoid and the leaky ReLU.

Each ``*_forward(x)`` returns ``(out, cache)`` and each ``*_backward(dout, cache)`` returns ``dx``, of ``x``'s shape
and dtype.

- ``tanh``: ``d tanh(x) / dx = 1 - tanh(x)^2``, so the cache is the output.
- ``sigmoid``: ``s(x) = 1 / (1 + exp(-x))`` and ``s' = s (1 - s)``; the cache is the output.
- ``leaky_relu``: ``x`` where ``x > 0``, ``negative_slope * x`` elsewhere; the derivative is 1 or
  ``negative_slope``, taking ``negative_slope`` at ``x == 0`` exactly, as PyTorch does.
"""

from __future__ import annotations

import numpy as np


def tanh_forward(x: np.ndarray):
    """``out = tanh(x)``; the cache is ``out``."""
    out = np.tanh(x)
    return out, out


def tanh_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``dx = dout * (1 - tanh(x)^2)``."""
    return dout * (1 - out * out)


def sigmoid_forward(x: np.ndarray):
    """``out = 1 / (1 + exp(-x))``, computed without overflow; the cache is ``out``.

    With ``e = exp(-|x|)``, which lies in ``(0, 1]`` and never overflows, ``s(x) = 1 / (1 + e)`` for ``x >= 0`` and
    ``s(x) = e / (1 + e)`` for ``x < 0``. Both keep full relative precision: ``s(-40) = 4.2e-18`` comes out as
    such, where ``0.5 * (1 + tanh(x / 2))`` would round it to 0 and the textbook ``1 / (1 + exp(-x))`` would
    overflow ``exp`` for ``x < -710`` (``-89`` in float32).
    """
    e = np.exp(-np.abs(x))
    r = 1 / (1 + e)
    out = np.where(x >= 0, r, e * r)
    return out, out


def sigmoid_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``dx = dout * s(x) * (1 - s(x))``."""
    return dout * out * (1 - out)


def leaky_relu_forward(x: np.ndarray, negative_slope: float):
    """``out = x`` where ``x > 0`` else ``negative_slope * x``; the cache is ``(x > 0, negative_slope)``."""
    positive = x > 0
    return np.where(positive, x, x * negative_slope), (positive, negative_slope)


def leaky_relu_backward(dout: np.ndarray, cache) -> np.ndarray:
    """``dx = dout`` where ``x > 0``, else ``negative_slope * dout`` (``x == 0`` included)."""
    positive, negative_slope = cache
    return np.where(positive, dout, dout * negative_slope)
