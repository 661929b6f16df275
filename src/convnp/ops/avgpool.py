"""Average pooling over ``kH x kW`` windows with any stride (overlapping windows included), and global average
pooling, channels-last.

Forward: ``out[n, i, j, c] = (1 / (kH * kW)) * sum_{a, b} x[n, i*sH + a, j*sW + b, c]``; no padding, so every
window holds ``kH * kW`` real inputs (PyTorch's ``count_include_pad`` question does not arise).

Backward: each input of a window receives ``dout / (kH * kW)`` from it; overlapping windows add up, and pixels
past the last whole window get zero: ``dx[n, i*sH + a, j*sW + b, c] += dout[n, i, j, c] / (kH * kW)``.

Global average pooling is the window that covers the whole map: ``out[n, c] = mean_{h, w} x[n, h, w, c]`` and
``dx[n, h, w, c] = dout[n, c] / (H * W)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from convnp.ops.windows import is_tiled_2x2, reduce_tiles_2x2, scatter_windows, sliding_windows, write_tiles_2x2


class AvgPoolCache(NamedTuple):
    """What :func:`avgpool2d_backward` needs: shapes and settings only, no values.

    Attributes
    ----------
    x_shape : tuple
        ``(N, H, W, C)``, the input's shape.
    kernel_size, stride : (int, int)
    """

    x_shape: tuple
    kernel_size: tuple
    stride: tuple


def avgpool2d_forward(x: np.ndarray, kernel_size: tuple[int, int], stride: tuple[int, int]):
    """Average-pool ``x``.

    Parameters
    ----------
    x : ndarray of shape `(N, H, W, C)`
    kernel_size, stride : (int, int)

    Returns
    -------
    out : ndarray of shape `(N, H_out, W_out, C)`
        ``H_out = floor((H - kH) / sH) + 1``, likewise for W, as in PyTorch with ``ceil_mode=False``.
    cache : AvgPoolCache

    The sum is a running add over the ``kH * kW`` window offsets, each one vectorised pass over a strided view.
    """
    kH, kW = kernel_size
    if is_tiled_2x2(kernel_size, stride):
        return _forward_2x2(x), AvgPoolCache(x.shape, kernel_size, stride)
    windows = sliding_windows(x, kernel_size, stride)  # (N, H_out, W_out, kH, kW, C), a view
    out = windows[:, :, :, 0, 0, :].copy()  # (N, H_out, W_out, C)
    for a in range(kH):
        for b in range(kW):
            if a or b:
                out += windows[:, :, :, a, b, :]
    out /= kH * kW
    return out, AvgPoolCache(x.shape, kernel_size, stride)


def avgpool2d_backward(dout: np.ndarray, cache: AvgPoolCache) -> np.ndarray:
    """Spread each window's gradient evenly over its inputs.

    Parameters
    ----------
    dout : ndarray of shape `(N, H_out, W_out, C)`
    cache : AvgPoolCache from :func:`avgpool2d_forward`

    Returns
    -------
    dx : ndarray of shape `(N, H, W, C)`
    """
    (kH, kW), stride = cache.kernel_size, cache.stride
    if is_tiled_2x2((kH, kW), stride):
        return write_tiles_2x2(dout / 4, cache.x_shape, dout.dtype)  # each input gets its window's dout / 4
    N, H_out, W_out, C = dout.shape
    share = (dout / (kH * kW))[:, :, :, None, None, :]  # (N, H_out, W_out, 1, 1, C)
    dwin = np.broadcast_to(share, (N, H_out, W_out, kH, kW, C))  # the same share for every input of a window
    return scatter_windows(dwin, cache.x_shape, stride)


def _forward_2x2(x: np.ndarray) -> np.ndarray:
    """2x2 windows, stride 2: the rows of each tile added first, then its two columns
    (:func:`~convnp.ops.windows.reduce_tiles_2x2`), so ``((x00 + x10) + (x01 + x11)) / 4``.

    The backward pass writes ``dout / 4`` through the tiles by one broadcast copy, faster than the general scatter
    (``docs/performance.md``).
    """
    out = reduce_tiles_2x2(x, np.add)
    out /= 4
    return out


def global_avgpool2d_forward(x: np.ndarray):
    """``out[n, c] = mean_{h, w} x[n, h, w, c]``.

    Parameters
    ----------
    x : ndarray of shape `(N, H, W, C)`

    Returns
    -------
    out : ndarray of shape `(N, C)`
    cache : tuple
        ``x``'s shape, ``(N, H, W, C)``.

    Each sample's ``(H * W, C)`` block is reduced with a ones-vector matrix product, which goes through BLAS (faster
    than ``x.mean(axis=(1, 2))`` for the few channels of small CNNs).
    """
    N, H, W, C = x.shape
    ones = np.full(H * W, 1.0 / (H * W), dtype=x.dtype)  # (H*W,)
    out = ones @ x.reshape(N, H * W, C)  # (N, H*W, C) reduced to (N, C)
    return out, x.shape


def global_avgpool2d_backward(dout: np.ndarray, x_shape) -> np.ndarray:
    """``dx[n, h, w, c] = dout[n, c] / (H * W)``, of shape `(N, H, W, C)`."""
    N, H, W, C = x_shape
    dx = np.empty(x_shape, dtype=dout.dtype)
    dx[...] = (dout / (H * W))[:, None, None, :]  # (N, 1, 1, C) broadcast over the map
    return dx
