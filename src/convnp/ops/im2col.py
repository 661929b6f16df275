"""Laying convolution windows out as matrix rows ("im2col"), a cache-sized chunk of the batch at a time.

The whole batch's im2col matrix is ``kH*kW`` times the input, too large to stay in cache, so the convolutions of
:mod:`convnp.ops.conv` work through the batch a few images at a time (:data:`CHUNK_BYTES` of rows, :func:`chunks`):
build that chunk's rows, multiply, move on. The chunk buffers are reused between calls through a ``workspace``
dict (:func:`buffer`). Rows are built three ways: window by window (:func:`im2col`), transposed for one input
channel (:func:`im2col_transposed`), or four outputs to a row for wide one-channel kernels
(:mod:`convnp.ops.conv_blocked`); :func:`cols` picks. What each choice measured is in ``docs/performance.md``.
"""

from __future__ import annotations

import numpy as np

from convnp.ops.conv_blocked import im2col_blocked
from convnp.ops.machine import l2_cache_bytes
from convnp.ops.windows import conv_output_size, sliding_windows

#: Bytes of im2col matrix built at a time; at least one whole image is always taken. Half the CPU's L2 cache, so
#: that the chunk and BLAS's packed copy of it both stay there (docs/performance.md).
CHUNK_BYTES = l2_cache_bytes() // 2


def buffer(workspace: dict | None, key: str, shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array of ``shape``, carved from a buffer in ``workspace`` that is reused between calls.

    The buffer only grows, so a batch's smaller last chunk fits in the full chunks' buffer. Reuse spares the
    allocator and the page faults of a fresh array on every chunk.
    """
    size = int(np.prod(shape))
    if workspace is None:
        return np.empty(shape, dtype=dtype)
    buf = workspace.get(key)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = workspace[key] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)  # (size,) -> shape


def padded_chunk(x: np.ndarray, start: int, stop: int, pads, workspace: dict | None = None) -> np.ndarray:
    """Samples ``start:stop`` of ``x`` zero-padded by ``pads``, contiguous: ``(n, H + top + bottom, W + left +
    right, C)``.

    ``x`` itself (a view) when nothing is padded. Otherwise a view of a buffer kept in ``workspace`` under
    ``"x_padded"``: its border zeros are written when it is made and never touched again, and each call rewrites
    only the interior, so no padded copy of the whole batch is ever made (and the chunk is written into cache).
    """
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x[start:stop]
    _, H, W, C = x.shape
    shape = (stop - start, H + top + bottom, W + left + right, C)
    buf = None if workspace is None else workspace.get("x_padded")
    if buf is None or buf.shape[1:] != shape[1:] or buf.shape[0] < shape[0] or buf.dtype != x.dtype:
        buf = np.zeros(shape, dtype=x.dtype)
        if workspace is not None:
            workspace["x_padded"] = buf
    region = buf[: shape[0]]  # (n, H_p, W_p, C), contiguous
    region[:, top : top + H, left : left + W] = x[start:stop]
    return region


def im2col(x_padded: np.ndarray, kernel_size, stride, workspace: dict | None = None, key: str = "cols") -> np.ndarray:
    """Copy every window of ``x_padded`` into one row.

    Parameters
    ----------
    x_padded : ndarray of shape `(N, H, W, C)`
    kernel_size, stride : (int, int)
    workspace : dict, optional
        Where the buffer is kept between calls, under ``key``.

    Returns
    -------
    cols : ndarray of shape `(N*H_out*W_out, kH*kW*C)`
        Row ``(n, i, j)`` holds window ``(i, j)`` of sample ``n`` in ``(a, b, c)`` order, matching
        ``weight.reshape(kH*kW*C, C_out)``.
    """
    windows = sliding_windows(x_padded, kernel_size, stride)  # (N, H_out, W_out, kH, kW, C), a view
    N, H_out, W_out, kH, kW, C = windows.shape
    cols = buffer(workspace, key, (N * H_out * W_out, kH * kW * C), x_padded.dtype)
    if x_padded.flags.c_contiguous and cols.size:
        # Each kernel row of a window is kW*C contiguous input values: copied as one opaque item, which was
        # faster than NumPy's loop over runs of floats (docs/performance.md).
        item = np.dtype((np.void, kW * C * x_padded.itemsize))
        bN, bH, bW, _ = x_padded.strides
        sources = np.ndarray((N, H_out, W_out, kH), dtype=item, buffer=x_padded,
                             strides=(bN, bH * stride[0], bW * stride[1], bH))  # overlapping items, a view
        # (N*H_out*W_out, kH*kW*C) -> (N, H_out, W_out, kH) items of kW*C values
        np.copyto(cols.reshape(N, H_out, W_out, kH, kW * C).view(item)[..., 0], sources)
        return cols
    cols6 = cols.reshape(N, H_out, W_out, kH, kW, C)  # (N*H_out*W_out, kH*kW*C), viewed window by window
    np.copyto(cols6, windows)  # runs of kW*C contiguous values; for one channel see im2col_transposed
    return cols


def im2col_transposed(x_padded: np.ndarray, kernel_size, stride, workspace: dict | None = None,
                      ones: bool = False) -> np.ndarray:
    """The transpose of :func:`im2col`, built directly: one row per kernel offset and channel.

    Parameters
    ----------
    x_padded : ndarray of shape `(N, H, W, C)`
    kernel_size, stride : (int, int)
    ones : bool
        Add a last row of ones, so that a weight with the bias as its last row adds the bias in the product.

    Returns
    -------
    cols_t : ndarray of shape `(kH*kW*C, N*H_out*W_out)`, or `(kH*kW*C + 1, N*H_out*W_out)` with ``ones``
        Row ``(a, b, c)`` holds input channel ``c`` at kernel offset ``(a, b)`` of every window, so
        ``cols_t.T`` equals ``im2col(x_padded, ...)`` (with a column of ones after it).

    With one input channel (every zoo network's first layer) each row is a shifted image slab, copied in long
    runs, where :func:`im2col` writes runs of only ``kW`` values ``kH*kW`` apart; the matrix products take the
    transpose for free (a BLAS flag). From two channels on, :func:`im2col`'s runs of ``kW*C`` values were as fast or
    faster, so :func:`cols` uses this for one channel only (timings in ``docs/performance.md``).
    """
    kH, kW = kernel_size
    sH, sW = stride
    N, H, W, C = x_padded.shape
    H_out, W_out = conv_output_size(H, kH, sH), conv_output_size(W, kW, sW)
    cols_t = buffer(workspace, "cols_t", (kH * kW * C + int(ones), N * H_out * W_out), x_padded.dtype)
    if ones:
        cols_t[-1] = 1
    rows = cols_t[: kH * kW * C].reshape(kH, kW, C, N, H_out, W_out)  # a view of the buffer
    for a in range(kH):
        for b in range(kW):
            # (N, H_out, W_out, C) -> (C, N, H_out, W_out), row block (a, b) of cols_t
            np.copyto(rows[a, b], offset_view(x_padded, a, b, H_out, W_out, stride).transpose(3, 0, 1, 2))
    return cols_t


def offset_view(x_padded: np.ndarray, a: int, b: int, H_out: int, W_out: int, stride) -> np.ndarray:
    """The ``(N, H_out, W_out, C)`` strided view of ``x_padded`` that kernel offset ``(a, b)`` of every window sees."""
    sH, sW = stride
    return x_padded[:, a : a + sH * (H_out - 1) + 1 : sH, b : b + sW * (W_out - 1) + 1 : sW, :]


def chunks(n: int, row_bytes: int, chunk_bytes: int):
    """``(start, stop)`` sample ranges whose im2col rows take about ``chunk_bytes``, one sample at least."""
    step = max(1, min(n, chunk_bytes // max(1, row_bytes)))
    return [(s, min(s + step, n)) for s in range(0, n, step)]


def cols(x_chunk: np.ndarray, kernel_size, stride, workspace, block: int = 1, ones: bool = False) -> np.ndarray:
    """im2col of a chunk, ``(n*H_out*W_out, kH*kW*C)``; for one channel a transposed view of
    :func:`im2col_transposed`; with ``block`` above 1 the rows of :func:`convnp.ops.conv_blocked.im2col_blocked`,
    ``(n*H_out*W_out/block, kH*(kW + block - 1))``. With ``ones`` (one channel only) a last column of ones."""
    if block > 1:
        n, H_p, W_p, _ = x_chunk.shape
        kH, kW = kernel_size
        size = n * (H_p - kH + 1) * (W_p - kW + 1) * (kH * (kW + block - 1) + int(ones)) // block
        return im2col_blocked(x_chunk, kernel_size, block, buffer(workspace, "cols", (size,), x_chunk.dtype), ones)
    if x_chunk.shape[3] == 1:
        # (kH*kW [+ 1], n*H_out*W_out) transposed
        return im2col_transposed(x_chunk, kernel_size, stride, workspace, ones).T
    return im2col(x_chunk, kernel_size, stride, workspace)
