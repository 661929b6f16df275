"""``BatchNorm1D`` and ``BatchNorm2D``: the stateful wrappers around :mod:`convnp.ops.batchnorm`.

Both normalise each channel (the last axis) with statistics over every other axis; they differ only in the input
they accept, ``(N, C)`` or ``(N, H, W, C)``. The running statistics are ``state``: saved in checkpoints by
:meth:`convnp.sequential.Sequential.state_dict`, never seen by an optimizer.
"""

from __future__ import annotations

import numpy as np

from convnp._checks import positive_int
from convnp.layers._args import real_number
from convnp.layers.base import Layer
from convnp.ops.batchnorm import batchnorm_backward, batchnorm_forward


class _BatchNorm(Layer):
    """Shared by BatchNorm1D and BatchNorm2D; see :class:`BatchNorm2D` for the documentation."""

    collective = True  # a split batch's shards add their sums (convnp.parallel.shard)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, dtype=np.float32):
        super().__init__(dtype)
        name = type(self).__name__
        self.num_features = positive_int(num_features, "num_features", name)
        self.eps = real_number(eps, "eps", name, low=0.0, low_open=True)
        self.momentum = real_number(momentum, "momentum", name, low=0.0, high=1.0)
        C = self.num_features
        self.params = {"weight": np.ones(C, dtype=self.dtype), "bias": np.zeros(C, dtype=self.dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.state = {"running_mean": np.zeros(C, dtype=self.dtype), "running_var": np.ones(C, dtype=self.dtype)}

    def get_config(self) -> dict:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    def _forward(self, x, training):
        gamma, beta = self.params["weight"], self.params["bias"]
        if not training:
            return batchnorm_forward(x, gamma, beta, self.eps, self.state["running_mean"], self.state["running_var"])
        m = x.size // self.num_features  # values per channel in this input
        allreduce = None
        if self.shard is not None:  # one shard of a split batch: the whole batch's statistics (convnp.parallel.shard)
            m = m // len(x) * self.shard.total
            allreduce = self.shard.allreduce
        if m < 2:
            # The unbiased variance of one value divides by zero; PyTorch refuses this too.
            raise ValueError(
                f"{self!r}: training needs more than one value per channel to estimate a variance, got input of "
                f"shape {x.shape}; use a batch of at least 2 samples, or forward(x, training=False)"
            )
        out, cache = batchnorm_forward(x, gamma, beta, self.eps, allreduce=allreduce, count=m)
        # PyTorch's update: the running variance is the UNBIASED batch variance, while normalising used the biased one.
        unbiased = cache.var * (m / (m - 1))
        for key, batch in (("running_mean", cache.mean), ("running_var", unbiased)):
            running = self.state[key]
            running *= 1.0 - self.momentum
            running += self.momentum * batch
        return out, cache

    def _backward(self, dout, cache):
        dx, self.grads["weight"], self.grads["bias"] = batchnorm_backward(dout, cache)
        return dx


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of channels-last feature maps, per channel over ``(N, H, W)``.

    Parameters
    ----------
    num_features : int
        ``C``, the number of channels.
    eps : float, default 1e-5
        Added to the variance before the square root; must be > 0.
    momentum : float, default 0.1
        Weight of the new batch in the running averages, in ``[0, 1]`` (PyTorch's convention: Keras's momentum is
        ``1 - momentum``).
    dtype : float32 (default) or float64

    ``params``: ``"weight"`` (``gamma``, ones) and ``"bias"`` (``beta``, zeros). ``state``: ``"running_mean"``
    (zeros) and ``"running_var"`` (ones).

    ``forward(x, training=True)`` normalises with the batch mean and the biased batch variance, then updates
    ``running = (1 - momentum) * running + momentum * batch`` with the batch mean and the *unbiased* batch variance
    (``m / (m - 1)`` times the biased one, ``m = N * H * W``). ``forward(x, training=False)`` normalises with the
    running statistics, so each sample's output is independent of the rest of the batch.

    Shape
    -----
    - Input: ``(N, H, W, C)`` with ``C = num_features``; training needs ``N * H * W >= 2``.
    - Output: ``(N, H, W, C)``, the input's shape.
    - ``weight``, ``bias``, ``running_mean``, ``running_var``: ``(C,)``

    Gradients
    ---------
    With ``xhat = (x - mean) / std``, ``std = sqrt(var + eps)``, ``dxhat = dout * gamma``, ``m = N * H * W`` and
    sums over ``(n, h, w)`` per channel: ``dgamma = sum(dout * xhat)``, ``dbeta = sum(dout)``, and after a training
    forward (batch statistics, which depend on ``x``)
    ``dx = (1 / (m * std)) * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))``.
    (With fixed running statistics the map is affine, ``dx = dout * gamma / std``; that is
    :func:`convnp.ops.batchnorm.batchnorm_backward` on an evaluation cache. ``backward`` always follows a training
    forward, so a layer always uses the first formula.)

    References: Ioffe & Szegedy 2015, "Batch Normalization";
    https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html
    """

    input_ndim = 4
    input_layout = "(N, H, W, C)"

    def _expected_trailing(self):
        return (None, None, self.num_features)

    def output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 3 or input_shape[-1] != self.num_features:
            raise ValueError(f"expected (H, W, {self.num_features}) per sample, got {input_shape}")
        return input_shape


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of feature vectors, per feature over the batch.

    Parameters, ``params``, ``state`` and the training/evaluation behaviour are those of :class:`BatchNorm2D`,
    with ``m = N``.

    Shape
    -----
    - Input: ``(N, C)`` with ``C = num_features``; training needs ``N >= 2``.
    - Output: ``(N, C)``
    - ``weight``, ``bias``, ``running_mean``, ``running_var``: ``(C,)``

    Gradients
    ---------
    As :class:`BatchNorm2D`, the sums running over the batch axis only: ``dgamma = sum_n dout * xhat``,
    ``dbeta = sum_n dout``, ``dx = (1 / (N * std)) * (N * dxhat - sum_n dxhat - xhat * sum_n dxhat * xhat)``.
    """

    input_ndim = 2
    input_layout = "(N, num_features)"

    def _expected_trailing(self):
        return (self.num_features,)

    def output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if input_shape != (self.num_features,):
            raise ValueError(f"expected {self.num_features} input features, got input of shape {input_shape}")
        return input_shape

