"""Element-wise activation layers: ReLU, Tanh, Sigmoid, LeakyReLU, around :mod:`convnp.ops.activations`.

Each takes any input of shape ``(N, ...)``, float32 or float64, and returns the same shape and dtype.
"""

from __future__ import annotations

from convnp.layers._args import real_number
from convnp.layers.base import Layer
from convnp.ops.activations import (
    leaky_relu_backward,
    leaky_relu_forward,
    relu,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)


class _Elementwise(Layer):
    """An element-wise map: any rank with a batch axis, output of the input's shape."""

    input_ndim = None  # any rank >= 1
    input_layout = "(N, ...)"

    def output_shape(self, input_shape):
        return tuple(input_shape)


class ReLU(_Elementwise):
    """``out = max(x, 0)``, any input shape ``(N, ...)``.

    Shape
    -----
    - Input: ``(N, ...)``
    - Output: the input's shape

    Gradients
    ---------
    ``dx = dout * [x > 0]`` (0 at ``x == 0`` exactly, as in PyTorch).
    """

    def _forward(self, x, training):
        if not training:
            return relu(x), None
        return relu_forward(x)

    def _backward(self, dout, mask):
        return relu_backward(dout, mask)


class Tanh(_Elementwise):
    """``out = tanh(x)``, any input shape ``(N, ...)``.

    Shape
    -----
    - Input: ``(N, ...)``
    - Output: the input's shape

    Gradients
    ---------
    ``dx = dout * (1 - tanh(x)^2) = dout * (1 - out^2)``.
    """

    def _forward(self, x, training):
        return tanh_forward(x)

    def _backward(self, dout, out):
        return tanh_backward(dout, out)


class Sigmoid(_Elementwise):
    """``out = 1 / (1 + exp(-x))``, any input shape ``(N, ...)``; finite and accurate for any ``|x|``.

    Shape
    -----
    - Input: ``(N, ...)``
    - Output: the input's shape, values in ``[0, 1]``

    Gradients
    ---------
    ``dx = dout * out * (1 - out)``.
    """

    def _forward(self, x, training):
        return sigmoid_forward(x)

    def _backward(self, dout, out):
        return sigmoid_backward(dout, out)


class LeakyReLU(_Elementwise):
    """``out = x`` where ``x > 0``, ``negative_slope * x`` elsewhere; any input shape ``(N, ...)``.

    Parameters
    ----------
    negative_slope : float, default 0.01
        Any finite number, as in PyTorch (0 gives ReLU).

    Shape
    -----
    - Input: ``(N, ...)``
    - Output: the input's shape

    Gradients
    ---------
    ``dx = dout * [x > 0] + negative_slope * dout * [x <= 0]``: at ``x == 0`` exactly the slope is
    ``negative_slope``, as in PyTorch.
    """

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = real_number(negative_slope, "negative_slope", type(self).__name__)

    def get_config(self) -> dict:
        return {"negative_slope": self.negative_slope}

    def _forward(self, x, training):
        return leaky_relu_forward(x, self.negative_slope)

    def _backward(self, dout, cache):
        return leaky_relu_backward(dout, cache)
