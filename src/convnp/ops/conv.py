"""2-D convolution (cross-correlation, as in every deep-learning library) by im2col and one matrix product.

Channels-last: ``x`` is ``(N, H, W, C_in)``, ``weight`` is ``(kH, kW, C_in, C_out)``, the output is
``(N, H_out, W_out, C_out)``.

Forward, with ``x_p`` the zero-padded input::

    out[n, i, j, k] = bias[k] + sum_{a, b, c} x_p[n, i*sH + a, j*sW + b, c] * weight[a, b, c, k]

Laying every window out as a row of ``cols`` (shape ``(N*H_out*W_out, kH*kW*C_in)``) turns this into
``out = cols @ weight.reshape(kH*kW*C_in, C_out)``. Backward is then three products:

- ``dweight = cols.T @ dout`` (the correlation of the input with the output gradient),
- ``dbias = sum of dout over N, H_out, W_out``,
- ``dx_p = col2im(dout @ weight.T)`` (a "full" correlation with the flipped kernel), cropped back to ``x``.

Reference: CS231n notes, "Convolutional Networks", section "Implementation as Matrix Multiplication".
"""

from __future__ import annotations

import numpy as np

from convnp.ops.windows import pad_hw, scatter_windows, sliding_windows


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride, pads):
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
    cache : tuple
        What :func:`conv2d_backward` needs.
    """
    N, H, W, C_in = x.shape
    kH, kW, _, C_out = weight.shape
    windows = sliding_windows(pad_hw(x, pads), (kH, kW), stride)  # (N, H_out, W_out, kH, kW, C_in), a view
    _, H_out, W_out = windows.shape[:3]
    cols = windows.reshape(N * H_out * W_out, kH * kW * C_in)  # copies: one row per output pixel
    out = cols @ weight.reshape(kH * kW * C_in, C_out)  # (N*H_out*W_out, C_out)
    if bias is not None:
        out += bias
    out = out.reshape(N, H_out, W_out, C_out)
    return out, (cols, x.shape, weight, bias is not None, stride, pads)


def conv2d_backward(dout: np.ndarray, cache):
    """Gradients of :func:`conv2d_forward`.

    Parameters
    ----------
    dout : ndarray of shape `(N, H_out, W_out, C_out)`
    cache : tuple from :func:`conv2d_forward`

    Returns
    -------
    dx : ndarray of shape `(N, H, W, C_in)`
    dweight : ndarray of shape `(kH, kW, C_in, C_out)`
    dbias : ndarray of shape `(C_out,)` or None
    """
    cols, x_shape, weight, has_bias, stride, pads = cache
    N, H, W, C_in = x_shape
    kH, kW, _, C_out = weight.shape
    _, H_out, W_out, _ = dout.shape
    (top, bottom), (left, right) = pads
    dout2d = dout.reshape(N * H_out * W_out, C_out)

    dweight = (cols.T @ dout2d).reshape(weight.shape)  # (kH*kW*C_in, C_out) -> (kH, kW, C_in, C_out)
    dbias = dout2d.sum(axis=0) if has_bias else None

    dcols = dout2d @ weight.reshape(kH * kW * C_in, C_out).T  # (N*H_out*W_out, kH*kW*C_in)
    dcols = dcols.reshape(N, H_out, W_out, kH, kW, C_in)
    dx_padded = scatter_windows(dcols, (N, H + top + bottom, W + left + right, C_in), stride)
    dx = dx_padded[:, top : top + H, left : left + W, :]
    return dx, dweight, dbias
