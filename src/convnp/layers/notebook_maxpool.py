"""``NotebookMaxPool2D``: a labelled copy of the seed notebook's WRONG max-pool backward, kept to show what it did.

DO NOT USE FOR TRAINING. The notebook's ``max_pooling_backprop`` adds ``max(window) * dout`` to *every* input of
each window. The true gradient sends ``dout`` to the window's argmax alone (see :mod:`convnp.ops.pool`). The wrong
version scales the gradient by the activation's size and spreads it over inputs that did not affect the output.

This class was written for convnp from the notebook's description; its forward is the correct max pooling.
``convnp replay-notebook --notebook-maxpool`` trains with it and reproduces the notebook's printed numbers, and
``convnp gradcheck --notebook-maxpool`` shows it failing the finite-difference check.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from convnp.layers.pooling import MaxPool2D
from convnp.ops.windows import scatter_windows


class NotebookMaxPoolCache(NamedTuple):
    """What the notebook's backward needs.

    Attributes
    ----------
    x_shape : tuple
        ``(N, H, W, C)``, the input's shape.
    maxima : ndarray of shape `(N, H_out, W_out, C)`
        Each window's maximum: the forward's output.
    """

    x_shape: tuple
    maxima: np.ndarray


class NotebookMaxPool2D(MaxPool2D):
    """Max pooling whose backward is the notebook's wrong one: ``dx[window] += max(window) * dout``.

    Shape: as :class:`convnp.layers.MaxPool2D`.
    """

    def _forward(self, x, training):
        out, _ = super()._forward(x, training)
        return out, NotebookMaxPoolCache(x.shape, out)

    def _backward(self, dout, cache):
        kH, kW = self.kernel_size
        N, H_out, W_out, C = dout.shape
        spread = (cache.maxima * dout)[:, :, :, None, None, :]  # (N, H_out, W_out, 1, 1, C)
        dwin = np.broadcast_to(spread, (N, H_out, W_out, kH, kW, C))  # the same value on all kH*kW inputs
        return scatter_windows(dwin, cache.x_shape, self.stride)
