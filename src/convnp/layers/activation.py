"""Element-wise activation layers."""

from __future__ import annotations

from convnp.layers.base import Layer
from convnp.ops.activations import relu_backward, relu_forward


class ReLU(Layer):
    """``out = max(x, 0)``, any input shape ``(N, ...)``.

    Gradient: ``dx = dout * [x > 0]`` (0 at ``x == 0`` exactly, as in PyTorch).
    """

    input_ndim = None  # any rank >= 1
    input_layout = "(N, ...)"

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def _forward(self, x, training):
        return relu_forward(x)

    def _backward(self, dout, mask):
        return relu_backward(dout, mask)
