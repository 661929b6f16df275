"""``Conv2D``: the stateful wrapper around :func:`convnp.ops.conv.conv2d_forward`."""

from __future__ import annotations

import numpy as np

from convnp._checks import as_pair, positive_int
from convnp.init import default_rng, init_weight
from convnp.layers.base import Layer
from convnp.ops.conv import conv2d_backward, conv2d_forward
from convnp.ops.windows import conv_output_size, resolve_padding


class Conv2D(Layer):
    """2-D convolution (cross-correlation) over channels-last images.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride : int or (int, int), default 1
    padding : int, (int, int), "valid" or "same", default 0
        Zero padding on each side; ``"valid"`` is 0; ``"same"`` keeps ``H_out = ceil(H / stride)``, the odd pixel of
        padding going to the bottom/right.
    bias : bool, default True
    weight_init : {"he", "glorot"}, default "he"
        He normal (``std = sqrt(2 / (kH * kW * in_channels))``) suits ReLU networks.
    rng : np.random.Generator, optional
        Source of the initial weights; ``None`` draws a fresh unseeded Generator.
    dtype : float32 (default) or float64

    Shape
    -----
    - Input: ``(N, H, W, in_channels)``
    - Output: ``(N, H_out, W_out, out_channels)`` with
      ``H_out = floor((H + pad_top + pad_bottom - kH) / sH) + 1`` and likewise for W.
    - ``weight``: ``(kH, kW, in_channels, out_channels)``; ``bias``: ``(out_channels,)``

    Gradients
    ---------
    With ``x_p`` the padded input and ``dout = dL/dout``:
    ``dweight[a, b, c, k] = sum_{n, i, j} x_p[n, i*sH + a, j*sW + b, c] * dout[n, i, j, k]``,
    ``dbias[k] = sum_{n, i, j} dout[n, i, j, k]``,
    ``dx_p[n, y, x, c] = sum over (i, a) with i*sH + a = y and (j, b) with j*sW + b = x of
    weight[a, b, c, k] * dout[n, i, j, k]``, then cropped to the unpadded input.

    Threads
    -------
    Not for several threads at once. A Conv2D keeps scratch buffers in ``workspace`` (the im2col matrix) and reuses
    them from call to call, inference included, so two concurrent forwards through one layer overwrite each other's
    and both can return wrong values, with no error raised. Run one replica per thread
    (:func:`convnp.parallel.replicate` for a model, :func:`convnp.parallel.replicate_layer` for a layer on its own):
    replicas share the weight arrays, and each has its own buffers.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        bias: bool = True,
        *,
        weight_init: str = "he",
        rng: np.random.Generator | None = None,
        dtype=np.float32,
    ):
        super().__init__(dtype)
        name = type(self).__name__
        self.in_channels = positive_int(in_channels, "in_channels", name)
        self.out_channels = positive_int(out_channels, "out_channels", name)
        self.kernel_size = as_pair(kernel_size, "kernel_size", name)
        self.stride = as_pair(stride, "stride", name)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"{name}: padding must be an int, a pair of ints, 'valid' or 'same', got {padding!r}")
            self.padding = padding
        else:
            self.padding = as_pair(padding, "padding", name, minimum=0)
        if not isinstance(bias, bool):
            raise ValueError(f"{name}: bias must be True or False, got {bias!r}")
        self.use_bias = bias
        self.weight_init = weight_init

        kH, kW = self.kernel_size
        shape = (kH, kW, self.in_channels, self.out_channels)
        self.params["weight"] = init_weight(
            weight_init,
            shape,
            default_rng(rng),
            fan_in=kH * kW * self.in_channels,
            fan_out=kH * kW * self.out_channels,
            dtype=self.dtype,
            owner=name,
        )
        if bias:
            self.params["bias"] = np.zeros(self.out_channels, dtype=self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def get_config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "bias": self.use_bias,
        }

    def _expected_trailing(self):
        return (None, None, self.in_channels)

    def _pads(self, H: int, W: int):
        padding = self.padding if isinstance(self.padding, str) else self.padding
        return resolve_padding(padding, self.kernel_size, self.stride, (H, W))

    def output_shape(self, input_shape):
        H, W, C = input_shape
        if C != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channel(s), got input of shape {tuple(input_shape)}")
        (top, bottom), (left, right) = self._pads(H, W)
        (kH, kW), (sH, sW) = self.kernel_size, self.stride
        H_out = conv_output_size(H, kH, sH, top + bottom)
        W_out = conv_output_size(W, kW, sW, left + right)
        if H_out < 1 or W_out < 1:
            raise ValueError(
                f"a {kH}x{kW} kernel does not fit in {H}x{W} with padding {self.padding!r}"
            )
        return (H_out, W_out, self.out_channels)

    def _forward(self, x, training):
        _, H, W, _ = x.shape
        # The im2col matrix is reused between calls. Training keeps it in the cache until the next training
        # forward replaces both; inference has its own buffer, so evaluating between a training forward and its
        # backward leaves the cache intact.
        workspace = self.workspace.setdefault("training" if training else "inference", {})
        return conv2d_forward(x, self.params["weight"], self.params.get("bias"), self.stride, self._pads(H, W), workspace)

    def _backward(self, dout, cache):
        dx, self.grads["weight"], dbias = conv2d_backward(dout, cache, input_grad=self.input_grad)
        if dbias is not None:
            self.grads["bias"] = dbias
        return dx
