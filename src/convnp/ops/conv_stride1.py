"""Stride-1 convolution gradients from the windows of the zero-padded output gradient.

With stride 1 the input gradient is itself a convolution: of ``dout``, zero-padded by ``kH - 1`` rows and
``kW - 1`` columns, with the kernel flipped in both spatial axes and its channel axes swapped::

    dx[n, y, x, c] = sum_{a, b, k} dout[n, y + top - a, x + left - b, k] * weight[a, b, c, k]

(terms outside ``dout`` are zero). Let ``D`` be the im2col matrix of that padded ``dout``: one row per input position
``(n, y, x)``, columns ``(a', b', k)`` holding ``dout[n, y + top - (kH - 1) + a', x + left - (kW - 1) + b', k]``,
so that ``a' = kH - 1 - a``. Then

- ``dx = D @ w_flip`` with ``w_flip[(a', b', k), c] = weight[kH - 1 - a', kW - 1 - b', c, k]``: one product per
  chunk and no adds;
- ``dweight[kH - 1 - a', kW - 1 - b', c, k] = sum_{n, y, x} D[(n, y, x), (a', b', k)] * x[n, y, x, c]``, that is
  ``D.T @ x`` with ``x`` as ``(N*H*W, C_in)`` rows: the same matrix serves the weight gradient, with the unpadded
  input as it is, where the general route builds a second im2col matrix from the padded input
  (:func:`shared_grads`).

``D`` covers every input position, so where the input has more positions than the output (a valid convolution)
both products do work on zeros; there :func:`convnp.ops.conv.conv2d_backward` takes the input gradient by row
groups (:mod:`convnp.ops.conv_rows`) instead. The figures are in ``docs/performance.md``.
"""

from __future__ import annotations

import numpy as np

from convnp.ops.gemm import matmul_blocks, matmul_tn
from convnp.ops.im2col import chunks, im2col


def flipped_weight(weight: np.ndarray) -> np.ndarray:
    """``w_flip`` of the module docstring: ``(kH, kW, C_in, C_out)`` flipped in both spatial axes, channel axes
    swapped, as ``(kH*kW*C_out, C_in)``."""
    kH, kW, C_in, C_out = weight.shape
    # (kH, kW, C_in, C_out) flipped -> (kH, kW, C_out, C_in) -> (kH*kW*C_out, C_in)
    return np.ascontiguousarray(weight[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(kH * kW * C_out, C_in)


def dout_windows(dout: np.ndarray, x_shape: tuple, kernel_size, pads, workspace, chunk_bytes: int):
    """For each chunk of the batch, ``(start, stop, D)``: the rows of ``D`` (see the module docstring) for samples
    ``start:stop``, ``(n*H*W, kH*kW*C_out)``, a view of a ``workspace`` buffer valid until the next chunk."""
    N, H, W, _ = x_shape
    kH, kW = kernel_size
    _, H_out, W_out, C_out = dout.shape
    (top, _), (left, _) = pads
    # The padded dout cut to the rows and columns whose windows land on x: dout's row 0 sits at row r0 of that
    # region (column c0), clipped where the padding exceeds the kernel.
    r0, c0 = kH - 1 - top, kW - 1 - left
    rows_in = slice(max(r0, 0), max(min(r0 + H_out, H + kH - 1), 0))
    cols_in = slice(max(c0, 0), max(min(c0 + W_out, W + kW - 1), 0))
    parts = chunks(N, H * W * kH * kW * C_out * dout.itemsize, chunk_bytes)
    # The chunk's padded dout, contiguous; reused between chunks and calls: only the part under dout is rewritten,
    # so the zeros around it are written once.
    shape = (parts[0][1] - parts[0][0], H + kH - 1, W + kW - 1, C_out)
    padded = None if workspace is None else workspace.get("dout_padded")
    if padded is None or padded.shape != shape or padded.dtype != dout.dtype:
        padded = np.zeros(shape, dtype=dout.dtype)
        if workspace is not None:
            workspace["dout_padded"] = padded
    for start, stop in parts:
        region = padded[: stop - start]  # (n, H + kH - 1, W + kW - 1, C_out), contiguous
        region[:, rows_in, cols_in] = dout[start:stop, rows_in.start - r0 : rows_in.stop - r0,
                                           cols_in.start - c0 : cols_in.stop - c0]
        yield start, stop, im2col(region, (kH, kW), (1, 1), workspace, key="dcols")  # (n*H*W, kH*kW*C_out)


def shared_grads(dout: np.ndarray, x: np.ndarray, weight: np.ndarray, pads, workspace, chunk_bytes: int,
                 want_dx: bool = True):
    """``(dx, dweight)`` of a stride-1 convolution, both from one ``D`` per chunk (``dx`` None unless ``want_dx``).

    Parameters
    ----------
    dout : ndarray of shape `(N, H_out, W_out, C_out)`
    x : ndarray of shape `(N, H, W, C_in)`
        The unpadded input, C-contiguous.
    weight : ndarray of shape `(kH, kW, C_in, C_out)`
    pads, workspace, chunk_bytes
        As for :func:`convnp.ops.conv.conv2d_forward`.
    """
    N, H, W, C_in = x.shape
    kH, kW, _, C_out = weight.shape
    rows = H * W
    x_rows = x.reshape(N * rows, C_in)  # (N*H*W, C_in), a view
    w_flip = flipped_weight(weight) if want_dx else None
    dx = np.empty((N * rows, C_in), dtype=dout.dtype) if want_dx else None  # (N*H*W, C_in)
    flipped = np.zeros((kH * kW * C_out, C_in), dtype=dout.dtype)  # D.T @ x: dweight flipped, (kH*kW*C_out, C_in)
    partial = np.empty_like(flipped)
    for start, stop, D in dout_windows(dout, x.shape, (kH, kW), pads, workspace, chunk_bytes):
        if want_dx:
            matmul_blocks(D, w_flip, dx[start * rows : stop * rows])
        matmul_tn(D, x_rows[start * rows : stop * rows], partial, workspace)
        flipped += partial
    # (kH*kW*C_out, C_in) -> (kH, kW, C_out, C_in), unflipped -> (kH, kW, C_in, C_out)
    dweight = np.ascontiguousarray(flipped.reshape(kH, kW, C_out, C_in)[::-1, ::-1].transpose(0, 1, 3, 2))
    return (None if dx is None else dx.reshape(N, H, W, C_in)), dweight
