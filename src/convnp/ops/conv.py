"""2-D convolution (cross-correlation, as in every deep-learning library) by im2col and matrix products.

Channels-last: ``x`` is ``(N, H, W, C_in)``, ``weight`` is ``(kH, kW, C_in, C_out)``, the output is
``(N, H_out, W_out, C_out)``.

Forward, with ``x_p`` the zero-padded input::

    out[n, i, j, k] = bias[k] + sum_{a, b, c} x_p[n, i*sH + a, j*sW + b, c] * weight[a, b, c, k]

Laying every window out as a row of ``cols`` (shape ``(N*H_out*W_out, kH*kW*C_in)``, "im2col") turns this into
``out = cols @ weight.reshape(kH*kW*C_in, C_out)``. Backward:

- ``dweight = cols.T @ dout`` (the correlation of the input with the output gradient),
- ``dbias = sum of dout over N, H_out, W_out``,
- ``dx_p[:, a + i*sH, b + j*sW, :] += dout[:, i, j, :] @ weight[a, b].T`` for each kernel offset ``(a, b)``:
  every window's share of the input gradient added back where the window came from ("col2im"), then ``dx_p`` is
  cropped back to ``x``. It is computed a kernel row and a few output columns at a time, one product for all
  of them and strided adds of whole row segments (:mod:`convnp.ops.conv_rows`). With stride 1 and "same" padding
  the same sum is a convolution of the zero-padded ``dout`` with the flipped kernel, whose im2col matrix gives the
  weight gradient too (:mod:`convnp.ops.conv_stride1`).

Both passes work through the batch a few images at a time (:mod:`convnp.ops.im2col`): build that chunk's rows,
multiply (:mod:`convnp.ops.gemm`), move on. The backward pass rebuilds each chunk rather than keeping the whole
matrix, since copying from cache is cheaper than the memory traffic it saves; a batch small enough to be one
chunk keeps its matrix. The input gradient is skipped when nobody needs it (the first layer); the bias gradient is
a matrix-vector product. :mod:`convnp.ops.reference` keeps the plain versions that the tests compare these
against. What each choice measured is in ``docs/performance.md``.

Reference: CS231n notes, "Convolutional Networks", section "Implementation as Matrix Multiplication".
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from convnp.ops import conv_rows, conv_stride1
from convnp.ops.conv_blocked import block_weight, block_width, fits, fold_block_grad
from convnp.ops.gemm import matmul_blocks, matmul_tn
from convnp.ops.im2col import CHUNK_BYTES, chunks, cols, im2col, im2col_transposed, padded_chunk
from convnp.ops.per_channel import tiled
from convnp.ops.windows import conv_output_size

__all__ = ["CHUNK_BYTES", "ConvCache", "conv2d_backward", "conv2d_forward", "im2col", "im2col_transposed"]


class ConvCache(NamedTuple):
    """What :func:`conv2d_backward` needs from :func:`conv2d_forward`.

    Attributes
    ----------
    x : ndarray of shape `(N, H, W, C_in)`
        The input itself (not a copy), so it must not change before backward. The backward pads it again chunk by
        chunk where it needs its im2col matrix (:func:`convnp.ops.im2col.padded_chunk`).
    shared : bool
        Whether the backward takes both gradients from the padded ``dout`` (:func:`shared_route`).
    weight : ndarray of shape `(kH, kW, C_in, C_out)`
    has_bias : bool
        Whether a bias was added, so whether ``dbias`` is computed.
    stride : (int, int)
    pads : ((top, bottom), (left, right))
    chunk_bytes : int
        The forward's :data:`CHUNK_BYTES` setting; the stride-1 input gradient chunks ``dout`` by it too.
    chunks : list of (int, int)
        The ``(start, stop)`` sample ranges the forward built its im2col matrix in; the backward uses the same.
    workspace : dict or None
        The scratch buffers of the forward (see :func:`convnp.ops.im2col.buffer`).
    kept : ndarray or None
        A batch that fit in one chunk: its whole im2col matrix, ``(N*H_out*W_out/block, kH*kW*C_in)`` (or the
        blocked rows of :func:`convnp.ops.conv_blocked.im2col_blocked`), a view of a ``workspace`` buffer. None
        otherwise.
    token : object
        Marks this forward's filling of ``workspace``: ``kept`` is still valid only while
        ``workspace["filled_by"] is token`` (another forward may have refilled the buffer since).
    block : int
        Outputs of a row per product row (:mod:`convnp.ops.conv_blocked`); 1 for plain im2col.
    bias_row : bool
        Whether the bias went into the product as the weight's last row, against a column of ones in the im2col
        rows (:func:`bias_in_product`); the weight gradient's product then gives ``dbias`` as its last row.
    """

    x: np.ndarray
    shared: bool
    weight: np.ndarray
    has_bias: bool
    stride: tuple
    pads: tuple
    chunk_bytes: int
    chunks: list
    workspace: dict | None
    kept: np.ndarray | None
    token: object
    block: int
    bias_row: bool


def bias_in_product(C_in: int, has_bias: bool) -> bool:
    """Whether the bias is added by the product itself: for one input channel, whose im2col rows (transposed, or
    blocked) take a column of ones at next to no cost (the product's time goes into writing its output, and 9 or 10
    inner values cost the same), which saves a pass over the output and, backward, one over ``dout``."""
    return has_bias and C_in == 1


def shared_route(C_in: int, stride, block: int, in_hw: tuple, out_hw: tuple) -> bool:
    """Whether the backward takes both gradients from the padded ``dout``'s im2col matrix
    (:func:`convnp.ops.conv_stride1.shared_grads`): for stride 1 where the input has no more positions than the
    output ("same" padding), from two input channels on (one-channel first layers have their own im2col routes)."""
    (H, W), (H_out, W_out) = in_hw, out_hw
    return block == 1 and C_in > 1 and tuple(stride) == (1, 1) and H * W <= H_out * W_out


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride, pads, workspace=None,
                   chunk_bytes: int = CHUNK_BYTES, block: int | None = None):
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
        Scratch buffers kept by the caller between calls (the chunk's im2col matrix).
    chunk_bytes : int
        About how many bytes of im2col matrix to build at a time; results do not depend on it beyond float
        rounding of ``dweight`` (which sums over chunks).
    block : int, optional
        Outputs of a row per product row (:mod:`convnp.ops.conv_blocked`); None lets
        :func:`~convnp.ops.conv_blocked.block_width` choose. Results do not depend on it beyond float rounding.

    Returns
    -------
    out : ndarray of shape `(N, H_out, W_out, C_out)`
        ``H_out = floor((H + top + bottom - kH) / sH) + 1``, likewise for W.
    cache : ConvCache
        What :func:`conv2d_backward` needs: the input itself (not a copy, and not the im2col matrix; ``x`` must not
        change before backward), the weight and settings.
    """
    kH, kW, C_in, C_out = weight.shape
    (top, bottom), (left, right) = pads
    N, Hp, Wp = x.shape[0], x.shape[1] + top + bottom, x.shape[2] + left + right  # the padded input's size
    H_out, W_out = conv_output_size(Hp, kH, stride[0]), conv_output_size(Wp, kW, stride[1])
    B = block_width(C_in, C_out, (kH, kW), stride, W_out) if block is None else block
    if not fits(B, C_in, stride, W_out):
        raise ValueError(f"block must be 1, or for one input channel and stride 1 a divisor of the output width "
                         f"{W_out}; got block={B} with {C_in} input channel(s) and stride {tuple(stride)}")
    rows = H_out * W_out // B  # im2col rows per sample
    bias_row = bias_in_product(C_in, bias is not None)
    w2d = _product_weight(weight, bias if bias_row else None, B).astype(np.result_type(x, weight), copy=False)
    out = np.empty((N * rows, B * C_out), dtype=np.result_type(x, weight))  # (N*H_out*W_out/B, B*C_out)
    parts = chunks(N, rows * w2d.shape[0] * x.itemsize, chunk_bytes)
    bias_tiled = None if bias is None or bias_row else tiled(bias, H_out * W_out * C_out)  # one sample's worth
    for start, stop in parts:
        part = out[start * rows : stop * rows]  # this chunk's rows, a view
        rows_in = cols(padded_chunk(x, start, stop, pads, workspace), (kH, kW), stride, workspace, B, bias_row)
        matmul_blocks(rows_in, w2d, part)
        if bias_tiled is not None:
            # While the chunk is still in cache, and one long row per sample (see convnp.ops.per_channel).
            part.reshape(stop - start, H_out * W_out * C_out)[...] += bias_tiled  # (n, H_out*W_out*C_out)
    # A batch that fit in one chunk leaves its whole im2col matrix in the buffer: backward reuses it unless another
    # forward has refilled the buffer since, which the token tells.
    kept, token = (rows_in if len(parts) == 1 else None), object()
    if workspace is not None:
        workspace["filled_by"] = token
    shared = shared_route(C_in, stride, B, x.shape[1:3], (H_out, W_out)) and x.flags.c_contiguous
    cache = ConvCache(x, shared, weight, bias is not None, stride, pads, chunk_bytes, parts, workspace,
                      kept, token, B, bias_row)
    return out.reshape(N, H_out, W_out, C_out), cache  # (N*H_out*W_out/B, B*C_out) -> (N, H_out, W_out, C_out)


def _product_weight(weight: np.ndarray, bias: np.ndarray | None, B: int) -> np.ndarray:
    """The forward product's weight: ``(kH*kW*C_in, C_out)``, or for blocked rows ``(kH*(kW + B - 1), B*C_out)``
    (:func:`~convnp.ops.conv_blocked.block_weight`); with ``bias``, one more row holding it (``B`` times)."""
    kH, kW, C_in, C_out = weight.shape
    w2d = weight.reshape(kH * kW * C_in, C_out) if B == 1 else block_weight(weight, B)
    return w2d if bias is None else np.concatenate([w2d, np.tile(bias, B)[None]])


def conv2d_backward(dout: np.ndarray, cache: ConvCache, input_grad: bool = True):
    """Gradients of :func:`conv2d_forward`.

    Parameters
    ----------
    dout : ndarray of shape `(N, H_out, W_out, C_out)`
    cache : ConvCache from :func:`conv2d_forward`
    input_grad : bool
        Compute ``dx``; ``False`` skips it (nothing upstream of a first layer needs it).

    Returns
    -------
    dx : ndarray of shape `(N, H, W, C_in)`, or None when ``input_grad`` is False
    dweight : ndarray of shape `(kH, kW, C_in, C_out)`
    dbias : ndarray of shape `(C_out,)` or None
    """
    N, H_out, W_out, C_out = dout.shape
    dout2d = dout.reshape(N * H_out * W_out, C_out)  # (N*H_out*W_out, C_out)
    # A matrix-vector product sums over rows far faster than dout2d.sum(axis=0) for few columns.
    dbias = np.ones(len(dout2d), dtype=dout.dtype) @ dout2d if cache.has_bias and not cache.bias_row else None
    if cache.shared:  # both gradients from the padded dout's windows (the forward chose, see shared_route)
        dx, dweight = conv_stride1.shared_grads(dout, cache.x, cache.weight, cache.pads, cache.workspace,
                                                cache.chunk_bytes, want_dx=input_grad)
        return dx, dweight, dbias
    dweight, dbias_from_product = _weight_grad(dout, cache)
    if cache.bias_row:
        dbias = dbias_from_product  # the bias's row of the product: the sum of dout over every position
    if not input_grad:
        return None, dweight, dbias
    dx = conv_rows.input_grad(dout, cache.weight, cache.x.shape, cache.stride, cache.pads, cache.workspace,
                              cache.chunk_bytes)
    return dx, dweight, dbias


def _weight_grad(dout: np.ndarray, cache: ConvCache):
    """``(dweight, dbias)``: ``dweight = cols.T @ dout``, of shape ``(kH, kW, C_in, C_out)``, summed chunk by chunk;
    ``dbias`` the product's row for the column of ones with ``cache.bias_row``, else None.

    Each chunk's im2col rows are rebuilt from the input, padded again (cheaper than keeping every chunk), unless the
    forward's single chunk is still in the workspace buffer.
    """
    kH, kW, C_in, C_out = cache.weight.shape
    B, workspace = cache.block, cache.workspace
    kept = cache.kept
    if kept is not None and workspace is not None and workspace.get("filled_by") is not cache.token:
        kept = None  # another forward refilled the buffer since
    N, H_out, W_out, _ = dout.shape
    block_rows = H_out * W_out // B
    # The gradient in the forward product's shape: (kH*kW*C_in [+ 1], C_out), or blocked (kH*(kW + B - 1),
    # B*C_out) with dout's rows B at a time.
    dout_blocks = dout.reshape(N * block_rows, B * C_out)  # (N*H_out*W_out/B, B*C_out), the same memory
    K = (kH * kW * C_in if B == 1 else kH * (kW + B - 1)) + int(cache.bias_row)
    dweight = np.zeros((K, B * C_out), dtype=dout.dtype)
    partial = np.empty_like(dweight)
    for start, stop in cache.chunks:
        if kept is not None:
            rows_in = kept
        else:
            rows_in = cols(padded_chunk(cache.x, start, stop, cache.pads, workspace), (kH, kW), cache.stride,
                           workspace, B, cache.bias_row)
        matmul_tn(rows_in, dout_blocks[start * block_rows : stop * block_rows], partial, workspace)
        dweight += partial
    dbias = None
    if cache.bias_row:  # the kernel's rows, then the bias's: (B*C_out,), summed over the B outputs of a row
        dweight, dbias = dweight[:-1], dweight[-1].reshape(B, C_out).sum(axis=0)
    if B == 1:
        dweight = dweight.reshape(cache.weight.shape)  # (kH*kW*C_in, C_out) -> (kH, kW, C_in, C_out)
    else:
        dweight = fold_block_grad(dweight, (kH, kW), B)  # the blocks folded back onto the kernel
    return dweight, dbias
