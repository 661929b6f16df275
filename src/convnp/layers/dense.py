"""``Dense``: the stateful wrapper around :mod:`convnp.ops.linear`."""

from __future__ import annotations

import numpy as np

from convnp._checks import positive_int
from convnp.init import default_rng, init_weight
from convnp.layers.base import Layer
from convnp.ops.linear import linear_backward, linear_forward


class Dense(Layer):
    """Fully connected layer, ``out = x @ weight + bias``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    weight_init : {"he", "glorot"}, default "he"
    rng : np.random.Generator, optional
    dtype : float32 (default) or float64

    Shape
    -----
    - Input: ``(N, in_features)``
    - Output: ``(N, out_features)``
    - ``weight``: ``(in_features, out_features)`` (the transpose of PyTorch's ``Linear.weight``); ``bias``:
      ``(out_features,)``

    Gradients
    ---------
    ``dx = dout @ weight.T``, ``dweight = x.T @ dout``, ``dbias = sum_n dout[n]``.
    """

    input_ndim = 2
    input_layout = "(N, in_features)"

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        weight_init: str = "he",
        rng: np.random.Generator | None = None,
        dtype=np.float32,
    ):
        super().__init__(dtype)
        name = type(self).__name__
        self.in_features = positive_int(in_features, "in_features", name)
        self.out_features = positive_int(out_features, "out_features", name)
        if not isinstance(bias, bool):
            raise ValueError(f"{name}: bias must be True or False, got {bias!r}")
        self.use_bias = bias
        self.params["weight"] = init_weight(
            weight_init,
            (self.in_features, self.out_features),
            default_rng(rng),
            fan_in=self.in_features,
            fan_out=self.out_features,
            dtype=self.dtype,
            owner=name,
        )
        if bias:
            self.params["bias"] = np.zeros(self.out_features, dtype=self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def get_config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.use_bias}

    def _expected_trailing(self):
        return (self.in_features,)

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.in_features,):
            raise ValueError(f"expected {self.in_features} input features, got input of shape {tuple(input_shape)}")
        return (self.out_features,)

    def _forward(self, x, training):
        return linear_forward(x, self.params["weight"], self.params.get("bias"))

    def _backward(self, dout, cache):
        dx, self.grads["weight"], dbias = linear_backward(dout, cache)
        if dbias is not None:
            self.grads["bias"] = dbias
        return dx
