"""Max pooling over ``kH x kW`` windows with any stride (overlapping windows included), channels-last.

Forward: ``out[n, i, j, c] = max_{a, b} x[n, i*sH + a, j*sW + b, c]``.

Backward: the maximum is locally the identity on one input and constant in the others, so each window's
gradient goes to exactly one input, its argmax: ``dx[n, i*sH + a*, j*sW + b*, c] += dout[n, i, j, c]``. Where a
window holds several equal maxima (common on MNIST: blank background, or zeros after ReLU), the gradient goes to the
*first* one in row-major window order, the same choice as PyTorch's CPU kernel. Overlapping windows that share a
maximum add their gradients there.

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
        ``x`` and ``out`` (no copies): backward finds each window's maximum again by comparison.

    The maximum is taken as a running ``np.maximum`` over the ``kH * kW`` window offsets, each step one vectorised
    pass over strided views, so no window is ever copied out.
    """
    kH, kW = kernel_size
    windows = sliding_windows(x, kernel_size, stride)  # (N, H_out, W_out, kH, kW, C), a view
    out = windows[:, :, :, 0, 0, :].copy()  # (N, H_out, W_out, C)
    for a in range(kH):
        for b in range(kW):
            if a or b:
                np.maximum(out, windows[:, :, :, a, b, :], out=out)
    return out, (x, out, kernel_size, stride)


def maxpool2d_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Route each window's gradient to its first maximum.

    Parameters
    ----------
    dout : ndarray of shape `(N, H_out, W_out, C)`
    cache : tuple from :func:`maxpool2d_forward`

    Returns
    -------
    dx : ndarray of shape `(N, H, W, C)`

    The window offsets are visited in row-major order; ``taken`` marks windows whose maximum was already found, so
    a later offset holding an equal value gets nothing.
    """
    x, out, (kH, kW), (sH, sW) = cache
    N, H_out, W_out, C = out.shape
    windows = sliding_windows(x, (kH, kW), (sH, sW))  # (N, H_out, W_out, kH, kW, C), a view
    dx = np.zeros_like(x)
    taken = np.zeros(out.shape, dtype=bool)
    for a in range(kH):
        for b in range(kW):
            hit = windows[:, :, :, a, b, :] == out  # (N, H_out, W_out, C)
            hit &= ~taken
            taken |= hit
            # Strided slice of dx that offset (a, b) of every window covers; overlapping windows add up.
            dx[:, a : a + sH * (H_out - 1) + 1 : sH, b : b + sW * (W_out - 1) + 1 : sW, :] += dout * hit
    return dx
