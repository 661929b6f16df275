"""Element-wise activations (ReLU, tanh, the logistic sigmoid, leaky ReLU) and the numerically stable softmax family.

Each ``*_forward(x)`` returns ``(out, cache)`` and each ``*_backward(dout, cache)`` returns ``dx``, of ``x``'s shape
and dtype; ``x`` may have any shape ``(N, ...)``.

- ``relu``: the derivative is ``[x > 0]``, so the cache is that mask (0 at ``x == 0``, as PyTorch does).
- ``tanh``: ``d tanh(x) / dx = 1 - tanh(x)^2``, so the cache is the output.
- ``sigmoid``: ``s(x) = 1 / (1 + exp(-x))`` and ``s' = s (1 - s)``; the cache is the output.
- ``leaky_relu``: ``x`` where ``x > 0``, ``negative_slope * x`` elsewhere; the derivative is 1 or
  ``negative_slope``, taking ``negative_slope`` at ``x == 0`` exactly, as PyTorch does.

``log_softmax`` and ``softmax`` have no backward here: the loss (:mod:`convnp.losses`) differentiates them together
with the cross-entropy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def relu_forward(x: np.ndarray):
    """``out = max(x, 0)``; the cache is the mask ``x > 0``.

    ``np.maximum`` runs as one vector loop where ``x * mask`` converted every boolean to a float first (about twice
    as slow); both give NaN for NaN.
    """
    return relu(x), x > 0


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` with nothing kept for a backward pass (inference)."""
    return np.maximum(x, 0)


def relu_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``dx = dout * [x > 0]``: the subgradient 0 is taken at ``x == 0``, as PyTorch does."""
    return dout * mask


def tanh_forward(x: np.ndarray):
    """``out = tanh(x)``; the cache is ``out``."""
    out = np.tanh(x)
    return out, out


def tanh_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``dx = dout * (1 - tanh(x)^2)``, in one buffer (one temporary where the plain expression made three)."""
    dx = np.multiply(out, out)
    np.subtract(1, dx, out=dx)
    return np.multiply(dx, dout, out=dx)


def sigmoid_forward(x: np.ndarray):
    """``out = 1 / (1 + exp(-x))``, computed without overflow; the cache is ``out``.

    With ``e = exp(-|x|)``, which lies in ``(0, 1]`` and never overflows, ``s(x) = 1 / (1 + e)`` for ``x >= 0`` and
    ``s(x) = e / (1 + e)`` for ``x < 0``. Both keep full relative precision: ``s(-40) = 4.2e-18`` comes out as
    such, where ``0.5 * (1 + tanh(x / 2))`` would round it to 0 and the textbook ``1 / (1 + exp(-x))`` would
    overflow ``exp`` for ``x < -710`` (``-89`` in float32).
    """
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)  # exp(-|x|), in one buffer: in-place steps spare the temporaries (docs/performance.md)
    r = e + 1
    np.reciprocal(r, out=r)  # 1 / (1 + e) = s(|x|)
    out = np.multiply(e, r, out=e)  # e / (1 + e) = s(-|x|)
    np.copyto(out, r, where=x >= 0)
    return out, out


def sigmoid_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``dx = dout * s(x) * (1 - s(x))``."""
    return dout * out * (1 - out)


class LeakyReLUCache(NamedTuple):
    """What :func:`leaky_relu_backward` needs from :func:`leaky_relu_forward`.

    Attributes
    ----------
    positive : ndarray of bool, of the shape of `x`
        Where ``x > 0``: the derivative is 1 there and ``negative_slope`` elsewhere.
    negative_slope : float
    """

    positive: np.ndarray
    negative_slope: float


def leaky_relu_forward(x: np.ndarray, negative_slope: float):
    """``out = x`` where ``x > 0`` else ``negative_slope * x``; the cache is a :class:`LeakyReLUCache`.

    For a slope up to 1 that is ``max(x, slope * x)`` and above 1 ``min(x, slope * x)``: either picks one of the two
    values exactly, with no per-element branch (``np.where``'s branch is mispredicted half the time on random signs).
    """
    out = x * negative_slope
    if negative_slope <= 1:
        np.maximum(out, x, out=out)
    else:
        np.minimum(out, x, out=out)
    return out, LeakyReLUCache(positive=x > 0, negative_slope=negative_slope)


def leaky_relu_backward(dout: np.ndarray, cache: LeakyReLUCache) -> np.ndarray:
    """``dx = dout`` where ``x > 0``, else ``negative_slope * dout`` (``x == 0`` included).

    The factor, exactly 1 or ``negative_slope``, is looked up by the mask (``np.take`` on a two-entry table, faster
    than ``np.where``).
    """
    factors = np.array([cache.negative_slope, 1], dtype=dout.dtype)
    return dout * np.take(factors, cache.positive.view(np.uint8))


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log softmax(z) = z - max(z) - log(sum(exp(z - max(z))))``.

    Subtracting the maximum first (log-sum-exp) keeps ``exp`` at or below 1, so logits of +-1e4 stay finite.
    """
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Row-wise probabilities, computed stably as ``exp(log_softmax(z))``."""
    return np.exp(log_softmax(logits, axis=axis))
