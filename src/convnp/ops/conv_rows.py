"""A convolution's input gradient from the output gradient's image rows, ``G`` output columns at a time.

Output row ``i`` of a convolution reads input rows ``i*sH + a``, one per kernel row ``a``, so its gradient goes back
to those rows: with ``dx_p`` the gradient of the zero-padded input,

    dx_p[n, i*sH + a, w, c] += sum_{j, k} dout[n, i, j, k] * weight[a, w - j*sW, c, k]   (0 <= w - j*sW < kW)

which for each ``a`` is ``dout``'s row (``W_out*C_out`` values) times a banded matrix. Cut the row into groups of
``G`` neighbouring output columns: every group meets the same band, ``(G*C_out, kH*Wg*C_in)`` for all kernel rows
at once, with ``Wg = (G - 1)*sW + kW`` input columns under the group (:func:`band_weight`). So one product per chunk
of the batch gives every group's share of every input row it touches::

    P = dout.reshape(n*H_out*W_out/G, G*C_out) @ band    # (n, H_out, W_out/G, kH, Wg*C_in)

and a few strided adds put it in place: for each kernel row, groups far enough apart not to overlap are added in one
call, runs of ``Wg*C_in`` contiguous values.

Against adding back window by window ("col2im"), the product is one wide matrix instead of ``kH*kW`` narrow ones
(``C_in`` columns each, 6 in LeNet-5), and the adds move whole row segments. The price: the band holds ``kW`` weights
in every ``Wg`` columns, so the product multiplies ``Wg / kW`` times as much as it must. :func:`group_width` keeps
that at most 2. The timings are in ``docs/performance.md``.
"""

from __future__ import annotations

import numpy as np

from convnp.ops.im2col import buffer, chunks

#: Most multiplications per useful one that a group may cost (``Wg / kW``).
MAX_INFLATION = 2

#: Most inner values ``G*C_out`` of the product; past this the product gains nothing and the band grows.
MAX_GROUP_COLUMNS = 128


def group_width(W_out: int, C_out: int, kW: int, sW: int) -> int:
    """``G``, the output columns a product row takes: the largest divisor of ``W_out`` whose band multiplies at most
    :data:`MAX_INFLATION` times the work (``(G - 1)*sW + kW <= MAX_INFLATION*kW``) and whose rows hold at most
    :data:`MAX_GROUP_COLUMNS` values (``G*C_out``); 1 when nothing larger fits."""
    fitting = [G for G in range(1, W_out + 1) if W_out % G == 0 and (G - 1) * sW + kW <= MAX_INFLATION * kW
               and G * C_out <= MAX_GROUP_COLUMNS]
    return max(fitting, default=1)


def band_weight(weight: np.ndarray, G: int, sW: int) -> np.ndarray:
    """The band that maps ``G`` output columns' gradients to the ``Wg = (G - 1)*sW + kW`` input columns under them.

    Parameters
    ----------
    weight : ndarray of shape `(kH, kW, C_in, C_out)`
    G, sW : int
        Output columns per group; the column stride.

    Returns
    -------
    ndarray of shape `(G*C_out, kH*Wg*C_in)`
        ``[(j, k), (a, t, c)] = weight[a, t - j*sW, c, k]`` where ``0 <= t - j*sW < kW``, else 0.
    """
    kH, kW, C_in, C_out = weight.shape
    Wg = (G - 1) * sW + kW
    band = np.zeros((G, C_out, kH, Wg, C_in), dtype=weight.dtype)
    taps = weight.transpose(3, 0, 1, 2)  # (C_out, kH, kW, C_in)
    for j in range(G):
        band[j, :, :, j * sW : j * sW + kW, :] = taps
    return band.reshape(G * C_out, kH * Wg * C_in)  # (G, C_out, kH, Wg, C_in) -> (G*C_out, kH*Wg*C_in)


def input_grad(dout: np.ndarray, weight: np.ndarray, x_shape: tuple, stride, pads, workspace: dict | None,
               chunk_bytes: int) -> np.ndarray:
    """``dx``, the gradient of a convolution's input, by row groups (module docstring).

    Parameters
    ----------
    dout : ndarray of shape `(N, H_out, W_out, C_out)`
    weight : ndarray of shape `(kH, kW, C_in, C_out)`
    x_shape : tuple
        ``(N, H, W, C_in)``, the unpadded input's shape.
    stride : (int, int)
    pads : ((top, bottom), (left, right))
    workspace : dict or None
        Keeps the product buffer between calls, under ``"row_groups"``.
    chunk_bytes : int
        About how many bytes of products to make at a time.

    Returns
    -------
    dx : ndarray of shape `(N, H, W, C_in)`
        A view of the padded gradient, cropped.
    """
    N, H, W, C_in = x_shape
    kH, kW, _, C_out = weight.shape
    _, H_out, W_out, _ = dout.shape
    (sH, sW), ((top, bottom), (left, right)) = stride, pads
    H_p, W_p = H + top + bottom, W + left + right
    G = group_width(W_out, C_out, kW, sW)
    Wg, groups = (G - 1) * sW + kW, W_out // G
    span, step = Wg * C_in, G * sW * C_in  # a group's input values in a row, and how far the next group starts
    apart = -(-Wg // (G * sW))  # groups this many apart do not overlap: each kernel row adds them in one call
    band = band_weight(weight, G, sW)  # (G*C_out, kH*Wg*C_in)
    dx_p = np.zeros((N, H_p, W_p * C_in), dtype=dout.dtype)  # (N, H_p, W_p*C_in): each image row as one run
    d_groups = dout.reshape(N * H_out * groups, G * C_out)  # (N*H_out*W_out/G, G*C_out), the same memory
    per_sample = H_out * groups * band.shape[1]
    for start, stop in chunks(N, per_sample * dout.itemsize, chunk_bytes):
        n = stop - start
        products = buffer(workspace, "row_groups", (n * H_out * groups, band.shape[1]), dout.dtype)
        np.matmul(d_groups[start * H_out * groups : stop * H_out * groups], band, out=products)
        parts = products.reshape(n, H_out, groups, kH, span)  # (n*H_out*W_out/G, kH*Wg*C_in) -> 5-D
        target = dx_p[start:stop]
        for a in range(kH):
            rows = target[:, a : a + sH * (H_out - 1) + 1 : sH]  # (n, H_out, W_p*C_in): input rows i*sH + a
            for first in range(min(apart, groups)):
                count = len(range(first, groups, apart))
                # Groups first, first + apart, ...: (n, H_out, count, span), disjoint runs of the rows
                place = np.lib.stride_tricks.as_strided(
                    rows[:, :, first * step :], shape=(n, H_out, count, span),
                    strides=(*rows.strides[:2], apart * step * dout.itemsize, dout.itemsize))
                place += parts[:, :, first::apart, a]
    dx_p = dx_p.reshape(N, H_p, W_p, C_in)  # (N, H_p, W_p*C_in) -> (N, H_p, W_p, C_in)
    return dx_p[:, top : top + H, left : left + W]
