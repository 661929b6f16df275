"""Inverted dropout: zero each input with probability ``p`` and scale the survivors by ``1 / (1 - p)``.

Scaling at training time keeps ``E[out] = x``, so inference is the identity and needs no rescaling.

Backward: the forward is ``out = x * mask`` with ``mask`` fixed once drawn (``0`` or ``1 / (1 - p)``), so
``dx = dout * mask``.

Reference: Srivastava et al. 2014, "Dropout: A Simple Way to Prevent Neural Networks from Overfitting";
PyTorch ``Dropout`` (https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html) for the inverted scaling.
"""

from __future__ import annotations

import numpy as np


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator, rows: tuple[int, int, int] | None = None):
    """Drop inputs at random.

    Parameters
    ----------
    x : ndarray of shape `(N, ...)`, float32 or float64
    p : float in [0, 1)
        Probability of zeroing each element.
    rng : np.random.Generator
        Source of the mask: one ``rng.random`` draw of ``x.shape`` (none when ``p == 0``).
    rows : (start, stop, total), optional
        ``x`` is rows ``start:stop`` of a batch of ``total``: draw the whole batch's uniforms and use these rows,
        so a split batch gets the masks of the unsplit one.

    Returns
    -------
    out : ndarray of the shape and dtype of `x`
    cache : ndarray of the shape and dtype of `x`, or a scalar of that dtype
        The mask: ``1 / (1 - p)`` where kept, ``0`` where dropped. For ``p == 0`` it is the scalar 1 and ``out`` is
        ``x`` itself (the identity; nothing is drawn or copied).

    Element ``i`` is kept when ``u_i >= p`` for ``u_i`` uniform on ``[0, 1)``, so with probability ``1 - p``. The
    uniforms are drawn directly in ``x``'s dtype: a float32 draw is half the memory traffic of a float64 one.
    """
    if p == 0:
        return x, x.dtype.type(1)
    scale = x.dtype.type(1.0 / (1.0 - p))
    if rows is None:
        u = rng.random(x.shape, dtype=x.dtype)
    else:
        start, stop, total = rows
        u = rng.random((total, *x.shape[1:]), dtype=x.dtype)[start:stop]  # (N, ...) of the whole batch's draw
    mask = (u >= p) * scale  # bool * scalar of x's dtype stays in that dtype
    return x * mask, mask


def dropout_backward(dout: np.ndarray, mask) -> np.ndarray:
    """``dx = dout * mask``, with the mask (array or scalar 1) from :func:`dropout_forward`."""
    return dout * mask
