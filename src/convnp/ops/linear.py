"""Fully connected (affine) layer: ``out = x @ weight + bias``.

``x`` is ``(N, in_features)`` and ``weight`` is ``(in_features, out_features)``, the notebook's layout (PyTorch
stores the transpose). Backward: ``dx = dout @ weight.T``, ``dweight = x.T @ dout``, ``dbias = sum_n dout``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LinearCache(NamedTuple):
    """What :func:`linear_backward` needs.

    Attributes
    ----------
    x : ndarray of shape `(N, in_features)`
        The input (not a copy: it must not change before backward).
    weight : ndarray of shape `(in_features, out_features)`
    has_bias : bool
        Whether a bias was added, so whether ``dbias`` is computed.
    """

    x: np.ndarray
    weight: np.ndarray
    has_bias: bool


def linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None):
    """Returns ``out`` of shape `(N, out_features)` and a :class:`LinearCache`."""
    out = x @ weight
    if bias is not None:
        out += bias
    return out, LinearCache(x, weight, bias is not None)


def linear_backward(dout: np.ndarray, cache: LinearCache):
    """Returns ``dx (N, in_features)``, ``dweight (in_features, out_features)``, ``dbias (out_features,)`` or None."""
    dx = dout @ cache.weight.T
    dweight = cache.x.T @ dout
    dbias = dout.sum(axis=0) if cache.has_bias else None
    return dx, dweight, dbias
