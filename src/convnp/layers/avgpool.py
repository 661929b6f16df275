"""``AvgPool2D`` and ``GlobalAvgPool2D``: the stateful wrappers around :mod:`convnp.ops.avgpool`."""

from __future__ import annotations

from convnp._checks import as_pair
from convnp.layers.base import Layer
from convnp.ops.avgpool import (
    avgpool2d_backward,
    avgpool2d_forward,
    global_avgpool2d_backward,
    global_avgpool2d_forward,
)
from convnp.ops.windows import conv_output_size


class AvgPool2D(Layer):
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

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = as_pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride", name)

    def get_config(self) -> dict:
        return {"kernel_size": self.kernel_size, "stride": self.stride}

    def output_shape(self, input_shape):
        H, W, C = _map_shape(input_shape)
        (kH, kW), (sH, sW) = self.kernel_size, self.stride
        if H < kH or W < kW:
            raise ValueError(f"a {kH}x{kW} pooling window does not fit in {H}x{W}")
        return (conv_output_size(H, kH, sH), conv_output_size(W, kW, sW), C)

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
