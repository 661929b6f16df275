"""Sliding-window index maths shared by convolution and pooling (the im2col step).

``sliding_windows`` returns a strided *view*: no data is copied until the caller reshapes it into a matrix.
"""

from __future__ import annotations

import numpy as np


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int = 0) -> int:
    """Number of window positions along one axis.

    ``out = floor((size + pad_total - kernel) / stride) + 1``, the formula of PyTorch's ``Conv2d``/``MaxPool2d``
    (with ``pad_total`` = padding on both sides, and no dilation).
    """
    return (size + pad_total - kernel) // stride + 1


def resolve_padding(padding, kernel_size: tuple[int, int], stride: tuple[int, int], in_hw: tuple[int, int]):
    """Turn a padding argument into explicit ``((top, bottom), (left, right))`` amounts.

    Parameters
    ----------
    padding : int, (int, int), "valid" or "same"
        ``"valid"`` is no padding. ``"same"`` gives ``out = ceil(in / stride)`` with the total padding
        ``max((out - 1) * stride + kernel - in, 0)`` split as evenly as possible, the odd pixel going to the bottom
        and right (TensorFlow's rule; PyTorch's ``padding="same"`` agrees for stride 1, the only stride it accepts).
    kernel_size, stride : (int, int)
    in_hw : (int, int)
        Input height and width; "same" depends on them when the stride is above 1.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            amounts = []
            for size, k, s in zip(in_hw, kernel_size, stride):
                out = -(-size // s)  # ceil(size / s)
                total = max((out - 1) * s + k - size, 0)
                amounts.append((total // 2, total - total // 2))
            return tuple(amounts)
        raise ValueError(f"padding must be an int, a pair of ints, 'valid' or 'same', got {padding!r}")
    ph, pw = padding
    return (ph, ph), (pw, pw)


def pad_hw(x: np.ndarray, pads) -> np.ndarray:
    """Zero-pad the H and W axes of ``x`` of shape ``(N, H, W, C)``; returns ``x`` itself when nothing is padded."""
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def sliding_windows(x: np.ndarray, kernel_size: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """A read-only strided view of every ``kH x kW`` window of ``x``.

    Parameters
    ----------
    x : ndarray of shape `(N, H, W, C)`
    kernel_size, stride : (int, int)

    Returns
    -------
    windows : ndarray view of shape `(N, H_out, W_out, kH, kW, C)`
        ``windows[n, i, j, a, b, c] == x[n, i * sH + a, j * sW + b, c]``, with
        ``H_out = floor((H - kH) / sH) + 1`` and likewise for W.
    """
    N, H, W, C = x.shape
    (kH, kW), (sH, sW) = kernel_size, stride
    H_out, W_out = conv_output_size(H, kH, sH), conv_output_size(W, kW, sW)
    bN, bH, bW, bC = x.strides
    return np.lib.stride_tricks.as_strided(
        x,
        shape=(N, H_out, W_out, kH, kW, C),
        strides=(bN, bH * sH, bW * sW, bH, bW, bC),
        writeable=False,
    )


def scatter_windows(dwin: np.ndarray, in_shape: tuple, stride: tuple[int, int]) -> np.ndarray:
    """The adjoint of :func:`sliding_windows` (col2im): add every window's values back onto the input grid.

    Parameters
    ----------
    dwin : ndarray of shape `(N, H_out, W_out, kH, kW, C)`
    in_shape : tuple ``(N, H, W, C)``
    stride : (int, int)

    Returns
    -------
    dx : ndarray of shape `in_shape`
        ``dx[n, y, x, c] = sum of dwin[n, i, j, a, b, c] over i * sH + a == y and j * sW + b == x``. Overlapping
        windows add up. Pixels that no window covers get zero.

    The loop runs over the ``kH * kW`` kernel offsets only; each step is one vectorised strided add.
    """
    N, H_out, W_out, kH, kW, C = dwin.shape
    sH, sW = stride
    dx = np.zeros(in_shape, dtype=dwin.dtype)
    for a in range(kH):
        for b in range(kW):
            dx[:, a : a + sH * (H_out - 1) + 1 : sH, b : b + sW * (W_out - 1) + 1 : sW, :] += dwin[:, :, :, a, b, :]
    return dx


def is_tiled_2x2(kernel_size, stride) -> bool:
    """Whether pooling windows are the 2x2 tiles at stride 2 that the pools' fast paths handle."""
    return tuple(kernel_size) == (2, 2) and tuple(stride) == (2, 2)


def tiles_2x2(a: np.ndarray) -> np.ndarray:
    """The ``(2, 2, N, H // 2, W // 2, C)`` strided view of the 2x2 tiles of ``a`` (stride 2), offset first:
    ``[i, j]`` is every tile's value at row ``i``, column ``j``; an odd last row or column is in no tile.
    Writeable when ``a`` is."""
    N, H, W, C = a.shape
    bN, bH, bW, bC = a.strides
    return np.lib.stride_tricks.as_strided(
        a, shape=(2, 2, N, H // 2, W // 2, C), strides=(bH, bW, bN, 2 * bH, 2 * bW, bC)
    )


def reduce_tiles_2x2(x: np.ndarray, ufunc) -> np.ndarray:
    """``ufunc`` (``np.maximum``, ``np.add``) over each 2x2 tile of ``x`` at stride 2, rows first:
    ``(N, H, W, C)`` -> ``(N, H // 2, W // 2, C)``; an odd last row or column is in no tile.

    Rows ``2i`` and ``2i + 1`` are long contiguous runs, so combining them takes one pass with no gathering, and the
    pairs of columns that remain are half the data. The order is ``f(f(x00, x10), f(x01, x11))``.
    """
    N, H, W, C = x.shape
    H_out, W_out = H // 2, W // 2
    # (N, 2*H_out, 2*W_out, C) -> (N, H_out, 2, 2*W_out*C): each pair of rows as two long runs (a copy only when x
    # is not contiguous or has an odd row or column)
    pairs = x[:, : 2 * H_out, : 2 * W_out].reshape(N, H_out, 2, 2 * W_out * C)
    # (N, H_out, 2*W_out*C) -> (N, H_out, W_out, 2, C): the two columns of each window
    rows = ufunc(pairs[:, :, 0], pairs[:, :, 1]).reshape(N, H_out, W_out, 2, C)
    return ufunc(rows[:, :, :, 0], rows[:, :, :, 1])  # (N, H_out, W_out, C)


#: Below this many channels :func:`write_tiles_2x2` copies whole pixels (see :func:`_pixels`) rather than floats: at
#: 128 channels the pixel copy was slower, from 8 to 64 faster or even (``docs/performance.md``).
PIXEL_WRITE_BELOW = 64


def _pixels(a: np.ndarray) -> np.ndarray | None:
    """``a`` ``(N, H, W, C)`` viewed as ``(N, H, W, 1)`` opaque items of ``C`` values each, or None when its channels
    are not contiguous.

    A strided copy of whole pixels moves one ``C``-value item at a time where a float copy runs NumPy's inner loop
    over ``C`` values, which is faster for few channels.
    """
    if a.ndim != 4 or a.strides[3] != a.itemsize or a.shape[3] == 0:
        return None
    return a.view(np.dtype((np.void, a.itemsize * a.shape[3])))


def read_tiles_2x2(x: np.ndarray) -> np.ndarray:
    """:func:`tiles_2x2` of ``x`` for reading, as a contiguous copy: ``(2, 2, N, H // 2, W // 2, C)``.

    Each offset's strided view has innermost runs of only ``C`` values, and NumPy's cost per run made every
    operation on it slow; one copy (whole pixels at a time where the channels are contiguous) and contiguous
    operations after it were faster at every channel count measured (``docs/performance.md``).
    """
    pixels = _pixels(x)
    if pixels is None:
        return tiles_2x2(x).copy()
    return tiles_2x2(pixels).copy().view(x.dtype)  # (2, 2, N, H_out, W_out, 1) items -> (..., C) values


def write_tiles_2x2(parts: np.ndarray, x_shape: tuple, dtype) -> np.ndarray:
    """A new ``x_shape`` array holding ``parts`` (``(2, 2, N, H_out, W_out, C)``, or broadcastable to it) at the
    tile offsets, by one strided copy; an odd last row or column, in no tile, is zero."""
    N, H, W, C = x_shape
    dx = np.zeros(x_shape, dtype=dtype) if H % 2 or W % 2 else np.empty(x_shape, dtype=dtype)
    if C < PIXEL_WRITE_BELOW and parts.shape == (2, 2, N, H // 2, W // 2, C) and parts.dtype == dx.dtype \
            and parts.flags.c_contiguous:  # few channels: whole pixels at a time, as in read_tiles_2x2
        pixels = _pixels(dx)
        np.copyto(tiles_2x2(pixels), parts.view(pixels.dtype))
    else:
        np.copyto(tiles_2x2(dx), parts)
    return dx
