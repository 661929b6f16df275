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
that the tests compare this one against.

The 2x2 windows with stride 2 of nearly every CNN take a shorter route (:func:`_forward_2x2`): a tournament of
three ``np.maximum`` calls, remembering three yes/no answers (right beat left in the top pair, in the bottom pair,
bottom pair beat top), from which backward routes each gradient with three products and three differences. Its
timings against the general loop are in ``docs/performance.md``.

The seed notebook's backward instead spread ``max(window) * dout`` over all four inputs of each window; see
:mod:`convnp.layers.notebook_maxpool` for a labelled copy of that mistake.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from convnp.ops.windows import is_tiled_2x2, read_tiles_2x2, reduce_tiles_2x2, sliding_windows, write_tiles_2x2


class MaxPoolCache(NamedTuple):
    """What :func:`maxpool2d_backward` needs from the general route of :func:`maxpool2d_forward`.

    Attributes
    ----------
    winner : ndarray of shape `(N, H_out, W_out, C)`, uint8 or uint16
        The offset ``a * kW + b`` of each window's first maximum.
    x_shape : tuple
        ``(N, H, W, C)``, the input's shape.
    kernel_size, stride : (int, int)
    """

    winner: np.ndarray
    x_shape: tuple
    kernel_size: tuple
    stride: tuple


class MaxPool2x2Cache(NamedTuple):
    """What :func:`maxpool2d_backward` needs from the 2x2, stride-2 route: the tournament's three answers.

    Attributes
    ----------
    lower : ndarray of bool, of shape `(N, H_out, W_out, C)`
        The bottom pair's maximum beat the top pair's (strictly).
    right_top, right_bottom : ndarray of bool, of shape `(N, H_out, W_out, C)`
        In the top (bottom) pair, the right value beat the left (strictly).
    x_shape : tuple
        ``(N, H, W, C)``, the input's shape.
    """

    lower: np.ndarray
    right_top: np.ndarray
    right_bottom: np.ndarray
    x_shape: tuple


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
    cache : MaxPoolCache, or MaxPool2x2Cache for 2x2 windows at stride 2
    """
    kH, kW = kernel_size
    if is_tiled_2x2(kernel_size, stride):
        return _forward_2x2(x)
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
    return out, MaxPoolCache(winner, x.shape, kernel_size, stride)


def maxpool2d(x: np.ndarray, kernel_size: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """The output of :func:`maxpool2d_forward` alone, with nothing kept for a backward pass (inference).

    Parameters
    ----------
    x : ndarray of shape `(N, H, W, C)`
    kernel_size, stride : (int, int)

    Returns
    -------
    out : ndarray of shape `(N, H_out, W_out, C)`

    With no winner to record, 2x2 windows at stride 2 are reduced rows first: rows ``2i`` and ``2i + 1`` are long
    contiguous runs, so their maximum takes one pass with no gathering, and the pairs of columns that remain are
    half the data. (Training keeps the tournament on gathered tiles: a rows-first route that sends tied gradients
    where it does measured no faster in whole training steps.) The timings are in ``docs/performance.md``.
    """
    if is_tiled_2x2(kernel_size, stride):
        return reduce_tiles_2x2(x, np.maximum)
    kH, kW = kernel_size
    windows = sliding_windows(x, kernel_size, stride)  # (N, H_out, W_out, kH, kW, C), a view
    out = windows[:, :, :, 0, 0, :].copy()  # (N, H_out, W_out, C)
    for k in range(1, kH * kW):
        np.maximum(out, windows[:, :, :, k // kW, k % kW, :], out=out)
    return out


def _forward_2x2(x: np.ndarray):
    """:func:`maxpool2d_forward` for 2x2 windows, stride 2, with a :class:`MaxPool2x2Cache`.

    Strict ``>`` everywhere keeps the first of tied values in row-major order: the left of a pair, the top pair.
    The tile offsets are first gathered apart into contiguous arrays (see :func:`convnp.ops.windows.read_tiles_2x2`).
    """
    (x00, x01), (x10, x11) = read_tiles_2x2(x)  # each (N, H_out, W_out, C)
    top, bottom = np.maximum(x00, x01), np.maximum(x10, x11)  # (N, H_out, W_out, C) each
    right_top, right_bottom, lower = np.greater(x01, x00), np.greater(x11, x10), np.greater(bottom, top)
    out = np.maximum(top, bottom, out=top)
    return out, MaxPool2x2Cache(lower, right_top, right_bottom, x.shape)


def _index_dtype(n_offsets: int) -> np.dtype:
    return np.dtype(np.uint8 if n_offsets <= 256 else np.uint16)  # offsets 0 .. n_offsets - 1 must fit


def maxpool2d_backward(dout: np.ndarray, cache) -> np.ndarray:
    """Route each window's gradient to its first maximum.

    Parameters
    ----------
    dout : ndarray of shape `(N, H_out, W_out, C)`
    cache : MaxPoolCache or MaxPool2x2Cache, from :func:`maxpool2d_forward`

    Returns
    -------
    dx : ndarray of shape `(N, H, W, C)`
    """
    if isinstance(cache, MaxPool2x2Cache):
        return _backward_2x2(dout, cache)
    (kH, kW), (sH, sW) = cache.kernel_size, cache.stride
    N, H_out, W_out, C = dout.shape
    dx = np.zeros(cache.x_shape, dtype=dout.dtype)
    overlapping = sH < kH or sW < kW
    hit = np.empty(cache.winner.shape, dtype=bool)
    for k in range(kH * kW):
        a, b = divmod(k, kW)
        np.equal(cache.winner, k, out=hit)
        # The slice of dx that offset (a, b) of every window covers.
        target = dx[:, a : a + sH * (H_out - 1) + 1 : sH, b : b + sW * (W_out - 1) + 1 : sW, :]
        if overlapping:
            target += dout * hit  # windows share inputs: gradients add up
        else:
            np.multiply(dout, hit, out=target)  # each input is in one window at most: write in place
    return dx


def _backward_2x2(dout: np.ndarray, cache: MaxPool2x2Cache) -> np.ndarray:
    """:func:`maxpool2d_backward` for :func:`_forward_2x2`'s cache: ``dout`` split pair by pair.

    ``dout - dout * mask`` is ``dout`` or exactly 0, so every input gets its window's gradient or 0, as routing does.
    The four parts are computed contiguous and put in place by one strided copy, which was faster than four strided
    writes (``docs/performance.md``).
    """
    parts = np.empty((2, 2, *dout.shape), dtype=dout.dtype)  # [i, j]: the gradient at tile offset (i, j)
    (d00, d01), (d10, d11) = parts
    d_bottom = np.multiply(dout, cache.lower, out=d10)
    d_top = np.subtract(dout, d_bottom, out=d00)
    np.multiply(d_top, cache.right_top, out=d01)
    d_top -= d01
    np.multiply(d_bottom, cache.right_bottom, out=d11)
    d_bottom -= d11
    return write_tiles_2x2(parts, cache.x_shape, dout.dtype)
