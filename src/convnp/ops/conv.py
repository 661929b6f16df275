"""2-D convolution (cross-correlation, as in every deep-learning library) by im2col and matrix products.

Channels-last: ``x`` is ``(N, H, W, C_in)``, ``weight`` is ``(kH, kW, C_in, C_out)``, the output is
``(N, H_out, W_out, C_out)``.

Forward, with ``x_p`` the zero-padded input::

    out[n, i, j, k] = bias[k] + sum_{a, b, c} x_p[n, i*sH + a, j*sW + b, c] * weight[a, b, c, k]

Laying every window out as a row of ``cols`` (shape ``(N*H_out*W_out, kH*kW*C_in)``, "im2col") turns this into
``out = cols @ weight.reshape(kH*kW*C_in, C_out)``. Backward:

- ``dweight = cols.T @ dout`` (the correlation of the input with the output gradient),
- ``dbias = sum of dout over N, H_out, W_out``,
- ``dx_p[:, a + i*sH, b + j*sW, :] += dout[:, i, j, :] @ weight[a, b].T`` for each kernel offset ``(a, b)``: one
  matrix product per offset, added into a shifted strided slice (a "full" correlation with the flipped kernel),
  then cropped back to ``x``.

These are the fast versions: the im2col buffer is reused between calls through a ``workspace`` dict, a
one-channel input's im2col matrix is built transposed (long contiguous copies), the input gradient is skipped when
nobody needs it (the first layer), and the bias gradient is a matrix-vector product.
:mod:`convnp.ops.reference` keeps the plain versions that the tests compare these against.

Reference: CS231n notes, "Convolutional Networks", section "Implementation as Matrix Multiplication".
"""

from __future__ import annotations

import numpy as np

from convnp.ops.windows import pad_hw, sliding_windows


def _buffer(workspace: dict | None, key: str, shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array, reused from ``workspace`` when one of the same shape and dtype is there.

    Reuse spares the allocator and the page faults of a fresh multi-megabyte array on every step.
    """
    if workspace is None:
        return np.empty(shape, dtype=dtype)
    buf = workspace.get(key)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = workspace[key] = np.empty(shape, dtype=dtype)
    return buf


def im2col(x_padded: np.ndarray, kernel_size, stride, workspace: dict | None = None) -> np.ndarray:
    """Copy every window of ``x_padded`` into one row.

    Parameters
    ----------
    x_padded : ndarray of shape `(N, H, W, C)`
    kernel_size, stride : (int, int)

    Returns
    -------
    cols : ndarray of shape `(N*H_out*W_out, kH*kW*C)`
        Row ``(n, i, j)`` holds window ``(i, j)`` of sample ``n`` in ``(a, b, c)`` order, matching
        ``weight.reshape(kH*kW*C, C_out)``.
    """
    windows = sliding_windows(x_padded, kernel_size, stride)  # (N, H_out, W_out, kH, kW, C), a view
    N, H_out, W_out, kH, kW, C = windows.shape
    cols = _buffer(workspace, "cols", (N * H_out * W_out, kH * kW * C), x_padded.dtype)
    cols6 = cols.reshape(N, H_out, W_out, kH, kW, C)  # a view of the buffer
    np.copyto(cols6, windows)  # runs of kW*C contiguous values; for one channel see im2col_transposed
    return cols


def im2col_transposed(x_padded: np.ndarray, kernel_size, stride, workspace: dict | None = None) -> np.ndarray:
    """The transpose of :func:`im2col`, built directly: one row per kernel offset and channel.

    Parameters
    ----------
    x_padded : ndarray of shape `(N, H, W, C)`
    kernel_size, stride : (int, int)

    Returns
    -------
    cols_t : ndarray of shape `(kH*kW*C, N*H_out*W_out)`
        Row ``(a, b, c)`` holds input channel ``c`` at kernel offset ``(a, b)`` of every window, so
        ``cols_t.T`` equals ``im2col(x_padded, ...)``.

    With one input channel (every zoo network's first layer) each row is a shifted image slab, copied in long
    runs, where :func:`im2col` writes runs of only ``kW`` values ``kH*kW`` apart; the matrix products take the
    transpose for free (a BLAS flag). Measured here, im2col plus the product for a batch of 128 28x28 images, 3x3
    kernels: 6.7 -> 1.4 ms with 8 filters, 13.7 -> 8.2 ms with 32. From two channels on, :func:`im2col`'s runs of
    ``kW*C`` values were as fast or faster (6 channels, 5x5: 3.3 ms against 5.3), so :func:`conv2d_forward` uses
    this for one channel only.
    """
    kH, kW = kernel_size
    sH, sW = stride
    N, H, W, C = x_padded.shape
    H_out, W_out = (H - kH) // sH + 1, (W - kW) // sW + 1
    cols_t = _buffer(workspace, "cols_t", (kH * kW * C, N * H_out * W_out), x_padded.dtype)
    rows = cols_t.reshape(kH, kW, C, N, H_out, W_out)  # a view of the buffer
    for a in range(kH):
        for b in range(kW):
            window = x_padded[:, a : a + sH * (H_out - 1) + 1 : sH, b : b + sW * (W_out - 1) + 1 : sW, :]
            np.copyto(rows[a, b], window.transpose(3, 0, 1, 2))  # (N, H_out, W_out, C) -> (C, N, H_out, W_out)
    return cols_t


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride, pads, workspace=None):
    """Convolve ``x`` with ``weight``.

    Parameters
    ----------
    x : ndarray of shape `(N, H, W, C_in)`
    weight : ndarray of shape `(kH, kW, C_in, C_out)`
    bias : ndarray of shape `(C_out,)` or None
    stride : (int, int)
    pads : ((top, bottom), (left, right))
        Explicit zero padding, see :func:`convnp.ops.windows.resolve_padding`.
    workspace : dict, optional
        Scratch buffers kept by the caller between calls (the im2col matrix lives here and in the cache until the
        next call overwrites it).

    Returns
    -------
    out : ndarray of shape `(N, H_out, W_out, C_out)`
        ``H_out = floor((H + top + bottom - kH) / sH) + 1``, likewise for W.
    cache : tuple
        What :func:`conv2d_backward` needs.
    """
    N, H, W, C_in = x.shape
    kH, kW, _, C_out = weight.shape
    if C_in == 1:  # built transposed, see im2col_transposed; cols is a transposed view, (N*H_out*W_out, kH*kW)
        cols = im2col_transposed(pad_hw(x, pads), (kH, kW), stride, workspace).T
    else:
        cols = im2col(pad_hw(x, pads), (kH, kW), stride, workspace)  # (N*H_out*W_out, kH*kW*C_in)
    H_out = (H + sum(pads[0]) - kH) // stride[0] + 1
    W_out = (W + sum(pads[1]) - kW) // stride[1] + 1
    out = cols @ weight.reshape(kH * kW * C_in, C_out)  # (N*H_out*W_out, C_out)
    if bias is not None:
        out += bias
    return out.reshape(N, H_out, W_out, C_out), (cols, x.shape, weight, bias is not None, stride, pads)


def conv2d_backward(dout: np.ndarray, cache, input_grad: bool = True):
    """Gradients of :func:`conv2d_forward`.

    Parameters
    ----------
    dout : ndarray of shape `(N, H_out, W_out, C_out)`
    cache : tuple from :func:`conv2d_forward`
    input_grad : bool
        Compute ``dx``; ``False`` skips its ``kH*kW`` matrix products (nothing upstream of a first layer needs it).

    Returns
    -------
    dx : ndarray of shape `(N, H, W, C_in)`, or None when ``input_grad`` is False
    dweight : ndarray of shape `(kH, kW, C_in, C_out)`
    dbias : ndarray of shape `(C_out,)` or None
    """
    cols, x_shape, weight, has_bias, stride, pads = cache
    N, H, W, C_in = x_shape
    kH, kW, _, C_out = weight.shape
    _, H_out, W_out, _ = dout.shape
    M = N * H_out * W_out
    dout2d = dout.reshape(M, C_out)

    dweight = (cols.T @ dout2d).reshape(weight.shape)  # (kH*kW*C_in, C_out) -> (kH, kW, C_in, C_out)
    # A matrix-vector product sums over rows far faster than dout2d.sum(axis=0) for few columns.
    dbias = np.ones(M, dtype=dout.dtype) @ dout2d if has_bias else None
    if not input_grad:
        return None, dweight, dbias

    (top, bottom), (left, right) = pads
    sH, sW = stride
    dx_padded = np.zeros((N, H + top + bottom, W + left + right, C_in), dtype=dout.dtype)
    part = np.empty((M, C_in), dtype=dout.dtype)
    for a in range(kH):
        for b in range(kW):
            np.matmul(dout2d, weight[a, b].T, out=part)  # (M, C_out) @ (C_out, C_in)
            dx_padded[:, a : a + sH * (H_out - 1) + 1 : sH, b : b + sW * (W_out - 1) + 1 : sW, :] += part.reshape(
                N, H_out, W_out, C_in
            )
    return dx_padded[:, top : top + H, left : left + W, :], dweight, dbias
