"""Windowed pooling: the shared ``Pool2D`` base, and ``MaxPool2D`` around :mod:`convnp.ops.pool`."""

from __future__ import annotations

from convnp._checks import as_pair
from convnp.layers.base import Layer
from convnp.ops.pool import maxpool2d, maxpool2d_backward, maxpool2d_forward
from convnp.ops.windows import conv_output_size


class Pool2D(Layer):
    """What every windowed pooling layer shares: ``kernel_size``, ``stride`` (default: the kernel) and the shape."""

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = as_pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else as_pair(stride, "stride", name)

    def get_config(self) -> dict:
        return {"kernel_size": self.kernel_size, "stride": self.stride}

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"expected one (H, W, C) feature map per sample, got {tuple(input_shape)}")
        H, W, C = input_shape
        (kH, kW), (sH, sW) = self.kernel_size, self.stride
        if H < kH or W < kW:
            raise ValueError(f"a {kH}x{kW} pooling window does not fit in {H}x{W}")
        return (conv_output_size(H, kH, sH), conv_output_size(W, kW, sW), C)


class MaxPool2D(Pool2D):
    """Max pooling over ``kernel_size`` windows, channel by channel.

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

    Gradient
    --------
    ``dx[n, i*sH + a*, j*sW + b*, c] += dout[n, i, j, c]`` where ``(a*, b*)`` is the position of the window's
    maximum. Each window's gradient goes to exactly one input: with tied maxima, the *first* in row-major order
    within the window (PyTorch's choice too). Every other input of the window gets zero.
    """

    def _forward(self, x, training):
        if not training:
            return maxpool2d(x, self.kernel_size, self.stride), None
        return maxpool2d_forward(x, self.kernel_size, self.stride)

    def _backward(self, dout, cache):
        return maxpool2d_backward(dout, cache)
