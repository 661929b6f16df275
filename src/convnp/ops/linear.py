"""Fully connected (affine) layer: ``out = x @ weight + bias``.

``x`` is ``(N, in_features)`` and ``weight`` is ``(in_features, out_features)``, the notebook's layout (PyTorch
stores the transpose). Backward: ``dx = dout @ weight.T``, ``dweight = x.T @ dout``, ``dbias = sum_n dout``.
"""

from __future__ import annotations

import numpy as np


def linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None):
    """Returns ``out`` of shape `(N, out_features)` and the cache ``(x, weight, has_bias)``."""
    out = x @ weight
    if bias is not None:
        out += bias
    return out, (x, weight, bias is not None)


def linear_backward(dout: np.ndarray, cache):
    """Returns ``dx (N, in_features)``, ``dweight (in_features, out_features)``, ``dbias (out_features,)`` or None."""
    x, weight, has_bias = cache
    dx = dout @ weight.T
    dweight = x.T @ dout
    dbias = dout.sum(axis=0) if has_bias else None
    return dx, dweight, dbias
