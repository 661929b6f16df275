"""One-channel stride-1 convolutions computed ``B`` output pixels of a row at a time ("blocked" im2col).

A first layer (one input channel, ``C_out`` filters of ``kH x kW``) has a product of
``(N*H_out*W_out, kH*kW) @ (kH*kW, C_out)``: short rows and few columns, a shape OpenBLAS runs slowly. Grouping
``B`` neighbouring outputs of a row into one product row widens both sides:

- row ``(n, i, jb)`` holds the ``kH x (kW + B - 1)`` input patch under outputs ``(i, jb*B) .. (i, jb*B + B - 1)``;
- the weight becomes ``(kH*(kW + B - 1), B*C_out)``: column block ``j`` is the kernel shifted right by ``j``, zeros
  elsewhere (:func:`block_weight`);
- the product ``(N*H_out*W_out/B, B*C_out)`` is already ``(N, H_out, W_out, C_out)`` in memory, since the ``B``
  outputs of a row block are neighbours in channels-last order.

It multiplies ``(kW + B - 1) / kW`` times as much (zeros included) but builds ``kH*(kW + B - 1) / B`` values per
output instead of ``kH*kW``, each row from ``kH`` copies of ``kW + B - 1`` contiguous input values moved as one
opaque item. The weight gradient is the same product transposed, folded back by adding the ``B`` shifted column
blocks (:func:`fold_block_grad`).

:func:`block_width` blocks kernels 5 wide or wider, 4 outputs at a time where 4 divides the width: with 3-wide
kernels the zeros cost what the better shape saves. The timings behind that choice are in ``docs/performance.md``.
"""

from __future__ import annotations

import numpy as np

#: Narrowest kernel that blocking helped (see the module docstring); 3x3 kernels gained nothing.
MIN_KERNEL_WIDTH = 5

#: Most product columns, ``B * C_out``: 64, the widest measured (``sprint``'s 16 filters, 4 outputs at a time).
MAX_BLOCK_COLUMNS = 64


def fits(B: int, C_in: int, stride, W_out: int) -> bool:
    """Whether blocks of ``B`` outputs can compute this layer: ``B == 1`` always; above 1, one input channel,
    stride 1 and a width ``W_out`` that ``B`` divides."""
    return B == 1 or (B > 1 and C_in == 1 and tuple(stride) == (1, 1) and W_out % B == 0)


def block_width(C_in: int, C_out: int, kernel_size, stride, W_out: int) -> int:
    """How many outputs of a row one product row computes: 1 (plain im2col) unless blocking measured faster.

    Of the widths that :func:`fits`, blocking is used for kernels at least :data:`MIN_KERNEL_WIDTH` wide, with the
    largest ``B`` of 4 and 2 that keeps ``B * C_out`` within :data:`MAX_BLOCK_COLUMNS`.
    """
    if kernel_size[1] < MIN_KERNEL_WIDTH:
        return 1
    for B in (4, 2):
        if B * C_out <= MAX_BLOCK_COLUMNS and fits(B, C_in, stride, W_out):
            return B
    return 1


def block_weight(weight: np.ndarray, B: int) -> np.ndarray:
    """The product's weight for blocks of ``B`` outputs.

    Parameters
    ----------
    weight : ndarray of shape `(kH, kW, 1, C_out)`
    B : int

    Returns
    -------
    ndarray of shape `(kH*(kW + B - 1), B*C_out)`
        ``[(a, t), (j, k)] = weight[a, t - j, 0, k]`` where ``0 <= t - j < kW``, else 0.
    """
    kH, kW, _, C_out = weight.shape
    blocked = np.zeros((kH, kW + B - 1, B, C_out), dtype=weight.dtype)
    for j in range(B):
        blocked[:, j : j + kW, j, :] = weight[:, :, 0, :]
    return blocked.reshape(kH * (kW + B - 1), B * C_out)  # (kH, kW + B - 1, B, C_out) -> (kH*(kW + B - 1), B*C_out)


def fold_block_grad(dblocked: np.ndarray, kernel_size, B: int) -> np.ndarray:
    """The adjoint of :func:`block_weight`: ``(kH*(kW + B - 1), B*C_out)`` -> ``(kH, kW, 1, C_out)``, each kernel
    entry summed over the ``B`` places it occupies."""
    kH, kW = kernel_size
    parts = dblocked.reshape(kH, kW + B - 1, B, -1)  # (kH, kW + B - 1, B, C_out): [a, t, j, k]
    folded = parts[:, 0:kW, 0].copy()  # (kH, kW, C_out)
    for j in range(1, B):
        folded += parts[:, j : j + kW, j]
    return folded[:, :, None, :]


def im2col_blocked(x_padded: np.ndarray, kernel_size, B: int, out: np.ndarray, ones: bool = False) -> np.ndarray:
    """The product rows for blocks of ``B`` outputs, written into ``out``.

    Parameters
    ----------
    x_padded : ndarray of shape `(n, H_p, W_p, 1)`
        Padded so that a stride-1 window fits exactly: ``W_p = W_out + kW - 1``, with ``B`` dividing ``W_out``.
    kernel_size : (int, int)
    B : int
    out : ndarray with at least ``n*H_out*(W_out/B)*(kH*(kW + B - 1) + ones)`` elements, of ``x_padded``'s dtype
    ones : bool
        Add a last column of ones, so that a weight with the bias as its last row adds the bias in the product.

    Returns
    -------
    cols : ndarray of shape `(n*H_out*W_out/B, kH*(kW + B - 1) [+ 1])`, a view of ``out``
        Row ``(s, i, jb)``, column ``(a, t)``: ``x_padded[s, i + a, jb*B + t, 0]``; then the ones.
    """
    kH, kW = kernel_size
    x = np.ascontiguousarray(x_padded)
    n, H_p, W_p, _ = x.shape
    H_out, T = H_p - kH + 1, kW + B - 1
    blocks = (W_p - kW + 1) // B
    K = kH * T + int(ones)  # values a row
    # Every row block's T input values, overlapping items B values apart: (n, H_p, blocks) opaque items.
    item = np.dtype((np.void, x.itemsize * T))
    patches = np.ndarray((n, H_p, blocks), dtype=item, buffer=x, strides=(x.strides[0], x.strides[1], x.itemsize * B))
    cols = out[: n * H_out * blocks * K].reshape(n * H_out * blocks, K)  # (n*H_out*W_out/B, kH*T [+ 1])
    if ones:
        cols[:, -1] = 1
    # (n*H_out*W_out/B, kH*T) -> (n, H_out, W_out/B, kH) items of T values: one per kernel row
    rows = cols[:, : kH * T].reshape(n, H_out, blocks, kH, T).view(item)[..., 0]
    for a in range(kH):
        np.copyto(rows[:, :, :, a], patches[:, a : a + H_out])
    return cols
