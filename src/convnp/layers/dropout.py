"""``Dropout``: the stateful wrapper around :mod:`convnp.ops.dropout`, holding the random Generator."""

from __future__ import annotations

import numpy as np

from convnp.init import default_rng
from convnp.layers._args import real_number
from convnp.layers.base import Layer
from convnp.ops.dropout import dropout_backward, dropout_forward


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    Parameters
    ----------
    p : float in [0, 1), default 0.5
        Probability of dropping an element. ``p = 0`` is the identity.
    rng : np.random.Generator, optional
        Source of the masks, kept as the attribute ``rng``: the same Generator state gives the same masks. A
        replica for another thread (:func:`convnp.parallel.replicate`) draws from a copy of it.
        ``None`` draws a fresh unseeded Generator.

    ``forward(x, training=False)`` is the identity and returns ``x`` itself, like PyTorch (no rescaling is needed:
    training already kept ``E[out] = x``).
    ``forward(x, training=True)`` draws a new mask from ``rng`` on every call.

    Shape
    -----
    - Input: ``(N, ...)``, any rank with a batch axis
    - Output: the input's shape

    Gradients
    ---------
    ``out = x * mask`` with ``mask = [u >= p] / (1 - p)`` fixed by the forward, so ``dx = dout * mask``.
    """

    input_ndim = None  # any rank >= 1
    input_layout = "(N, ...)"


    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None):
        super().__init__()
        name = type(self).__name__
        self.p = real_number(p, "p", name, low=0.0, high=1.0, high_open=True)
        self.rng = default_rng(rng)

    def get_config(self) -> dict:
        return {"p": self.p}

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def _forward(self, x, training):
        if not training:
            return x, None
        if self.shard is None:
            return dropout_forward(x, self.p, self.rng)
        # One shard of a split batch: draw the whole batch's mask, keep this shard's rows (convnp.parallel.shard), so
        # the masks do not depend on how the batch was split.
        shard = self.shard
        return dropout_forward(x, self.p, self.rng, rows=(shard.start, shard.stop, shard.total))

    def _backward(self, dout, mask):
        return dropout_backward(dout, mask)
