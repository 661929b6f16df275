"""Max pooling over ``kH x kW`` windows with any stride (overlapping windows included), channels-last.

Forward: ``out[n, i, j, c] = max_{a, b} x[n, i*sH + a, j*sW + b, c]``.

Backward: the maximum is locally the identity on one input and constant in the others, so each window's
gradient goes to exactly one input, its argmax: ``dx[n, i*sH + a*, j*sW + b*, c] += dout[n, i, j, c]``. Where a
window holds several equal maxima (common on MNIST: blank background, or zeros after ReLU), the gradient goes to the
*first* one in row-major window order, the same choice as PyTorch's CPU kernel. Overlapping windows that share a
maximum add their gradients there.

The forward pass records which window offset won (a strict ``>`` keeps the first of equal values), so no window is
ever copied out and backward needs neither ``x`` nor a comparison. Windows that tile the image (stride equal to
the kernel, the usual case) take a faster route with the same result. :mod:`convnp.ops.reference` keeps a plainer
version that the tests compare both against.

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
    if tuple(stride) == tuple(kernel_size):
        out, winner = _tiled_max(x, kernel_size)
    else:
        out, winner = _windowed_max(x, kernel_size, stride)
    return out, (winner, x.shape, kernel_size, stride)


def _windowed_max(x, kernel_size, stride):
    """Any stride: a running maximum over the window offsets, each a strided view of ``x``."""
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
    return out, winner


def _index_dtype(n_offsets: int) -> np.dtype:
    return np.dtype(np.uint8 if n_offsets <= 128 else np.uint16)  # room for n_offsets + offsets without overflow


def _tiled_max(x, kernel_size):
    """Windows that tile the image (stride == kernel): the same result, organised for long contiguous runs.

    Channels-last rows are long contiguous runs, but neighbouring columns sit only ``C`` values apart, and NumPy
    pays per inner run. So the maximum is taken down each window's rows first, on whole image rows, and only
    then across the ``kW`` columns, on data ``kH`` times smaller, laid out contiguously. The first maximum in
    row-major order is the one in the top-most row holding the window's maximum, left-most within that row:
    ``a*`` is the smallest "first row" among the columns that reach the maximum, ``b*`` the first such column
    whose first row is ``a*``.
    """
    kH, kW = kernel_size
    N, H, W, C = x.shape
    H_out, W_out = H // kH, W // kW
    if H != H_out * kH or W != W_out * kW:
        x = np.ascontiguousarray(x[:, : H_out * kH, : W_out * kW, :])  # drop what no window covers
    index = _index_dtype(kH * kW)
    rows = x.reshape(N, H_out, kH, W_out * kW * C)  # rows[:, i, a] is image row i*kH + a
    col_max = rows[:, :, 0].copy()  # (N, H_out, W_out*kW*C): per column, the max down the window's rows
    first_row = np.zeros(col_max.shape, dtype=index)
    greater = np.empty(col_max.shape, dtype=bool)
    for a in range(1, kH):
        np.greater(rows[:, :, a], col_max, out=greater)
        np.maximum(col_max, rows[:, :, a], out=col_max)
        np.maximum(first_row, greater.astype(index) * index.type(a), out=first_row)  # a only grows
    # (kW, N, H_out, W_out, C): each column offset contiguous for the step across columns.
    col_max = np.ascontiguousarray(col_max.reshape(N, H_out, W_out, kW, C).transpose(3, 0, 1, 2, 4))
    first_row = np.ascontiguousarray(first_row.reshape(N, H_out, W_out, kW, C).transpose(3, 0, 1, 2, 4))
    # Loops over the kW columns, not NumPy reductions along axis 0: those transpose internally and crawl.
    out = col_max[0].copy()  # (N, H_out, W_out, C)
    for b in range(1, kW):
        np.maximum(out, col_max[b], out=out)
    # Columns that miss the maximum get first row + kH, out of reach of the minimum below.
    not_max = [(col_max[b] != out).astype(index) * index.type(kH) for b in range(kW)]
    top = first_row[0] + not_max[0]  # a*: the top-most row holding the maximum
    for b in range(1, kW):
        np.minimum(top, first_row[b] + not_max[b], out=top)
    left = np.zeros(out.shape, dtype=index)  # b*: the first column whose maximum sits in row a*
    found = (first_row[0] + not_max[0]) == top
    for b in range(1, kW):
        here = (first_row[b] + not_max[b]) == top
        here &= ~found
        found |= here
        np.maximum(left, here.astype(index) * index.type(b), out=left)  # b only grows
    return out, top * index.type(kW) + left


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
