"""``AvgPool2D`` and ``GlobalAvgPool2D``: the stateful wrappers around :mod:`convnp.ops.avgpool`."""

from __future__ import annotations

from convnp.layers.base import Layer
from convnp.layers.pooling import Pool2D
from convnp.ops.avgpool import (
    avgpool2d_backward,
    avgpool2d_forward,
    global_avgpool2d_backward,
    global_avgpool2d_forward,
)


class AvgPool2D(Pool2D):
    """Average pooling over ``kernel_size`` windows, channel by channel, without padding.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size`` (non-overlapping windows, as in PyTorch). A smaller stride overlaps windows.

    Shape
    -----
    - Input: ``(N, H, W, C)``
    - Output: ``(N, H_out, W_out, C)`` with ``H_out = floor((H - kH) / sH) + 1`` and likewise for W
      (rows/columns past the last whole window are dropped).

    Gradients
    ---------
    ``dx[n, i*sH + a, j*sW + b, c] += dout[n, i, j, c] / (kH * kW)`` for every offset ``(a, b)`` of every window
    ``(i, j)``: overlapping windows add up, and inputs that no window covers get zero.
    """

    def _forward(self, x, training):
        return avgpool2d_forward(x, self.kernel_size, self.stride)

    def _backward(self, dout, cache):
        return avgpool2d_backward(dout, cache)


class GlobalAvgPool2D(Layer):
    """The mean of each channel over the whole map: ``(N, H, W, C) -> (N, C)``.

    Shape
    -----
    - Input: ``(N, H, W, C)``, any ``H, W >= 1``
    - Output: ``(N, C)``, ``out[n, c] = (1 / (H * W)) * sum_{h, w} x[n, h, w, c]``

    Gradients
    ---------
    ``dx[n, h, w, c] = dout[n, c] / (H * W)`` for every ``(h, w)``.
    """

    def output_shape(self, input_shape):
        H, W, C = _map_shape(input_shape)
        return (C,)

    def _forward(self, x, training):
        return global_avgpool2d_forward(x)

    def _backward(self, dout, x_shape):
        return global_avgpool2d_backward(dout, x_shape)


def _map_shape(input_shape) -> tuple[int, int, int]:
    """``(H, W, C)`` of one sample, or a ValueError saying that a feature map was expected."""
    if len(input_shape) != 3:
        raise ValueError(f"expected one (H, W, C) feature map per sample, got {tuple(input_shape)}")
    return tuple(input_shape)
