"""``Flatten``: from feature maps to feature vectors."""

from __future__ import annotations

import math

from convnp.layers.base import Layer


class Flatten(Layer):
    """Flatten every axis after the batch axis, in C (row-major) order.

    For channels-last maps ``(N, H, W, C)`` feature ``(h, w, c)`` lands at index ``(h * W + w) * C + c``, the
    same order as the seed notebook's ``P.reshape(m, nHi * nWi * nCi)``.

    Shape
    -----
    - Input: ``(N, d_1, ..., d_k)``
    - Output: ``(N, d_1 * ... * d_k)``

    Gradient: ``dx = dout.reshape(x.shape)``.
    """

    input_ndim = None
    input_layout = "(N, ...)"

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def _forward(self, x, training):
        return x.reshape(x.shape[0], -1), x.shape  # (N, H*W*C)

    def _backward(self, dout, x_shape):
        return dout.reshape(x_shape)  # (N, H, W, C)
