"""Plain reference kernels: the simplest correct NumPy versions of the fast paths in :mod:`convnp.ops`.

The fast kernels (buffer reuse, shifted matmuls, argmax bookkeeping) are tested against these on random
configurations; these in turn are tested against finite differences and PyTorch. Read these first.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from convnp.ops.windows import pad_hw, scatter_windows, sliding_windows


class ConvReferenceCache(NamedTuple):
    """What :func:`conv2d_backward_reference` needs.

    Attributes
    ----------
    cols : ndarray of shape `(N*H_out*W_out, kH*kW*C_in)`
        The whole batch's im2col matrix, one row per output pixel.
    x_shape : tuple
        ``(N, H, W, C_in)``, the unpadded input's shape.
    weight : ndarray of shape `(kH, kW, C_in, C_out)`
    has_bias : bool
    stride : (int, int)
    pads : ((top, bottom), (left, right))
    """

    cols: np.ndarray
    x_shape: tuple
    weight: np.ndarray
    has_bias: bool
    stride: tuple
    pads: tuple


class MaxPoolReferenceCache(NamedTuple):
    """What :func:`maxpool2d_backward_reference` needs: the input and output, from which it finds the maxima again.

    Attributes
    ----------
    x : ndarray of shape `(N, H, W, C)`
        The input (not a copy).
    out : ndarray of shape `(N, H_out, W_out, C)`
        Each window's maximum.
    kernel_size, stride : (int, int)
    """

    x: np.ndarray
    out: np.ndarray
    kernel_size: tuple
    stride: tuple


def conv2d_forward_reference(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride, pads):
    """Convolve ``x`` with ``weight``.

    Parameters
    ----------
    x : ndarray of shape `(N, H, W, C_in)`
    weight : ndarray of shape `(kH, kW, C_in, C_out)`
    bias : ndarray of shape `(C_out,)` or None
    stride : (int, int)
    pads : ((top, bottom), (left, right))
        Explicit zero padding, see :func:`convnp.ops.windows.resolve_padding`.

    Returns
    -------
    out : ndarray of shape `(N, H_out, W_out, C_out)`
        ``H_out = floor((H + top + bottom - kH) / sH) + 1``, likewise for W.
    cache : ConvReferenceCache
    """
    N, H, W, C_in = x.shape
    kH, kW, _, C_out = weight.shape
    windows = sliding_windows(pad_hw(x, pads), (kH, kW), stride)  # (N, H_out, W_out, kH, kW, C_in), a view
    _, H_out, W_out = windows.shape[:3]
    cols = windows.reshape(N * H_out * W_out, kH * kW * C_in)  # copies: one row per output pixel
    out = cols @ weight.reshape(kH * kW * C_in, C_out)  # (N*H_out*W_out, C_out)
    if bias is not None:
        out += bias
    out = out.reshape(N, H_out, W_out, C_out)  # (N*H_out*W_out, C_out) -> (N, H_out, W_out, C_out)
    return out, ConvReferenceCache(cols, x.shape, weight, bias is not None, stride, pads)


def conv2d_backward_reference(dout: np.ndarray, cache: ConvReferenceCache):
    """Gradients of :func:`conv2d_forward_reference`.

    Parameters
    ----------
    dout : ndarray of shape `(N, H_out, W_out, C_out)`
    cache : ConvReferenceCache from :func:`conv2d_forward_reference`

    Returns
    -------
    dx : ndarray of shape `(N, H, W, C_in)`
    dweight : ndarray of shape `(kH, kW, C_in, C_out)`
    dbias : ndarray of shape `(C_out,)` or None
    """
    N, H, W, C_in = cache.x_shape
    kH, kW, _, C_out = cache.weight.shape
    _, H_out, W_out, _ = dout.shape
    (top, bottom), (left, right) = cache.pads
    dout2d = dout.reshape(N * H_out * W_out, C_out)  # (N*H_out*W_out, C_out)

    dweight = (cache.cols.T @ dout2d).reshape(cache.weight.shape)  # (kH*kW*C_in, C_out) -> (kH, kW, C_in, C_out)
    dbias = dout2d.sum(axis=0) if cache.has_bias else None

    dcols = dout2d @ cache.weight.reshape(kH * kW * C_in, C_out).T  # (N*H_out*W_out, kH*kW*C_in)
    dcols = dcols.reshape(N, H_out, W_out, kH, kW, C_in)  # one (kH, kW, C_in) window per output pixel
    dx_padded = scatter_windows(dcols, (N, H + top + bottom, W + left + right, C_in), cache.stride)
    dx = dx_padded[:, top : top + H, left : left + W, :]
    return dx, dweight, dbias


def maxpool2d_forward_reference(x: np.ndarray, kernel_size: tuple[int, int], stride: tuple[int, int]):
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
    cache : MaxPoolReferenceCache
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
    return out, MaxPoolReferenceCache(x, out, kernel_size, stride)


def maxpool2d_backward_reference(dout: np.ndarray, cache: MaxPoolReferenceCache) -> np.ndarray:
    """Route each window's gradient to its first maximum.

    Parameters
    ----------
    dout : ndarray of shape `(N, H_out, W_out, C)`
    cache : MaxPoolReferenceCache from :func:`maxpool2d_forward_reference`

    Returns
    -------
    dx : ndarray of shape `(N, H, W, C)`

    The window offsets are visited in row-major order; ``taken`` marks windows whose maximum was already found, so
    a later offset holding an equal value gets nothing.
    """
    x, out = cache.x, cache.out
    (kH, kW), (sH, sW) = cache.kernel_size, cache.stride
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
