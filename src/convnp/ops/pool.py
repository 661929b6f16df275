"""Max pooling over ``kH x kW`` windows with any stride (overlapping windows included), channels-last.

Forward: ``out[n, i, j, c] = max_{a, b} x[n, i*sH + a, j*sW + b, c]``.

Backward: the maximum is locally the identity on one input and constant in the others, so each window's
gradient goes to exactly one input, its argmax: ``dx[n, i*sH + a*, j*sW + b*, c] += dout[n, i, j, c]``. Where a
window holds several equal maxima (common on MNIST: blank background, or zeros after ReLU), the gradient goes to the
*first* one in row-major window order, the same choice as PyTorch's CPU kernel. Overlapping windows that share a
maximum add their gradients there.

The forward pass keeps a running maximum over the ``kH * kW`` window offsets, each one vectorised pass over a
strided view, and records which offset won (a strict ``>`` keeps the first of equal values), so no window is ever
copied out and backward needs neither ``x`` nor a comparison. :mod:`convnp.ops.reference` keeps a plainer version
that the tests compare this one against. (A route organised around whole image rows for tiling windows was
measured slower once ``np.copyto(..., where=)`` was replaced by ``np.maximum``, and removed.)

The seed notebook's backward instead spread ``max(window) * dout`` over all four inputs of each window; see
:mod:`convnp.layers.legacy` for a labelled copy of that mistake.
"""

from __future__ import annotations

import numpy as np

from convnp.ops.windows import sliding_windows


def maxpool2d_forward(x: np.ndarray, kernel_size: tuple[int, int], stride: tuple[int, int]):
    """Max-pool ``x``.

    Parameters
    ----------
    x : ndarray of shape `(N, H, W, C)`
    kernel_size, stride : (int, int)

    Returns
    -------
    out : ndarray of shape `(N, H_out, W_out, C)`
        ``H_out = floor((H - kH) / sH) + 1``, likewise for W; rows and columns past the last whole window are
        dropped, as in PyTorch with ``ceil_mode=False``.
    cache : tuple
        The winning offset ``a * kW + b`` of every window (uint8 or uint16), the input shape, kernel and stride.
    """
    kH, kW = kernel_size
    windows = sliding_windows(x, kernel_size, stride)  # (N, H_out, W_out, kH, kW, C), a view
    out = windows[:, :, :, 0, 0, :].copy()  # (N, H_out, W_out, C)
    index = _index_dtype(kH * kW)
    winner = np.zeros(out.shape, dtype=index)
    greater = np.empty(out.shape, dtype=bool)
    for k in range(1, kH * kW):
        candidate = windows[:, :, :, k // kW, k % kW, :]
        np.greater(candidate, out, out=greater)  # strict: an equal later value does not take over
        np.maximum(out, candidate, out=out)
        # k only grows, so "k where this offset took over, else keep" is a maximum (np.where/copyto crawl here).
        np.maximum(winner, greater.astype(index) * index.type(k), out=winner)
    return out, (winner, x.shape, kernel_size, stride)


def _index_dtype(n_offsets: int) -> np.dtype:
    return np.dtype(np.uint8 if n_offsets <= 256 else np.uint16)  # offsets 0 .. n_offsets - 1 must fit


def maxpool2d_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Route each window's gradient to its first maximum.

    Parameters
    ----------
    dout : ndarray of shape `(N, H_out, W_out, C)`
    cache : tuple from :func:`maxpool2d_forward`

    Returns
    -------
    dx : ndarray of shape `(N, H, W, C)`
    """
    winner, x_shape, (kH, kW), (sH, sW) = cache
    N, H_out, W_out, C = dout.shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    overlapping = sH < kH or sW < kW
    hit = np.empty(winner.shape, dtype=bool)
    for k in range(kH * kW):
        a, b = divmod(k, kW)
        np.equal(winner, k, out=hit)
        # The slice of dx that offset (a, b) of every window covers.
        target = dx[:, a : a + sH * (H_out - 1) + 1 : sH, b : b + sW * (W_out - 1) + 1 : sW, :]
        if overlapping:
            target += dout * hit  # windows share inputs: gradients add up
        else:
            np.multiply(dout, hit, out=target)  # each input is in one window at most: write in place
    return dx
