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

from convnp.ops.windows import scatter_windows, sliding_windows


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
        The argmax of every window, and the shapes :func:`maxpool2d_backward` needs.
    """
    kH, kW = kernel_size
    windows = sliding_windows(x, kernel_size, stride)  # (N, H_out, W_out, kH, kW, C), a view
    N, H_out, W_out, _, _, C = windows.shape
    flat = windows.reshape(N, H_out, W_out, kH * kW, C)  # copies; window offsets in row-major order
    argmax = flat.argmax(axis=3)[:, :, :, None, :]  # (N, H_out, W_out, 1, C); argmax picks the first maximum
    out = np.take_along_axis(flat, argmax, axis=3)[:, :, :, 0, :]  # (N, H_out, W_out, C)
    return out, (argmax, x.shape, kernel_size, stride)


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
    argmax, x_shape, (kH, kW), stride = cache
    N, H_out, W_out, C = dout.shape
    dflat = np.zeros((N, H_out, W_out, kH * kW, C), dtype=dout.dtype)
    np.put_along_axis(dflat, argmax, dout[:, :, :, None, :], axis=3)
    return scatter_windows(dflat.reshape(N, H_out, W_out, kH, kW, C), x_shape, stride)
