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
  every window's share of the input gradient added back where the window came from ("col2im"), one strided slice
  of ``dx_p`` per offset, then ``dx_p`` is cropped back to ``x``. With stride 1 the same sum is a convolution of
  the zero-padded ``dout`` with the flipped kernel, computed like the forward pass (one product, no adds), used
  where the input is not much larger than the output (see :func:`conv2d_backward`).

The whole batch's im2col matrix is ``kH*kW`` times the input, too large to stay in cache, so both passes work
through the batch a few images at a time (:data:`CHUNK_BYTES` of ``cols``): build that chunk's rows, multiply,
move on. The backward pass rebuilds each chunk from the padded input rather than keeping the whole matrix, since
copying from cache is cheaper than the memory traffic it saves; a batch small enough to be one chunk keeps its
matrix. The chunk buffers are reused between calls through a ``workspace`` dict; a one-channel input's im2col
matrix is built transposed (long contiguous copies), or, for kernels 5 wide or wider, with up to four neighbouring
outputs per row (:mod:`convnp.ops.conv_blocked`); the input gradient is skipped when nobody needs it (the first
layer); the bias gradient is a matrix-vector product. :mod:`convnp.ops.reference` keeps the plain versions that the
tests compare these against. What each choice measured is in ``docs/performance.md``.

Reference: CS231n notes, "Convolutional Networks", section "Implementation as Matrix Multiplication".
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from convnp.ops.machine import l2_cache_bytes
from convnp.ops.conv_blocked import block_weight, block_width, fits, fold_block_grad, im2col_blocked
from convnp.ops.gemm import matmul_blocks, matmul_tn
from convnp.ops.per_channel import tiled
from convnp.ops.windows import conv_output_size, pad_hw, sliding_windows

#: Bytes of im2col matrix built at a time (see the module docstring); at least one whole image is always taken.
#: Half the CPU's L2 cache, so that the chunk and BLAS's packed copy of it both stay there (docs/performance.md).
CHUNK_BYTES = l2_cache_bytes() // 2


class ConvCache(NamedTuple):
    """What :func:`conv2d_backward` needs from :func:`conv2d_forward`.

    Attributes
    ----------
    x_p : ndarray of shape `(N, H + top + bottom, W + left + right, C_in)`
        The zero-padded input; ``x`` itself (not a copy) when nothing is padded, so ``x`` must not change before
        backward. The backward rebuilds the im2col matrix from it.
    x_shape : tuple
        ``(N, H, W, C_in)``, the unpadded input's shape.
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
        The scratch buffers of the forward (see :func:`_buffer`).
    kept : ndarray or None
        A batch that fit in one chunk: its whole im2col matrix, ``(N*H_out*W_out/block, kH*kW*C_in)`` (or the
        blocked rows of :func:`convnp.ops.conv_blocked.im2col_blocked`), a view of a ``workspace`` buffer. None
        otherwise.
    token : object
        Marks this forward's filling of ``workspace``: ``kept`` is still valid only while
        ``workspace["filled_by"] is token`` (another forward may have refilled the buffer since).
    block : int
        Outputs of a row per product row (:mod:`convnp.ops.conv_blocked`); 1 for plain im2col.
    """

    x_p: np.ndarray
    x_shape: tuple
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


def _buffer(workspace: dict | None, key: str, shape: tuple, dtype) -> np.ndarray:
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
    cols = _buffer(workspace, key, (N * H_out * W_out, kH * kW * C), x_padded.dtype)
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


def im2col_transposed(x_padded: np.ndarray, kernel_size, stride, workspace: dict | None = None) -> np.ndarray:
    """The transpose of :func:`im2col`, built directly: one row per kernel offset and channel.

    Parameters
    ----------
    x_padded : ndarray of shape `(N, H, W, C)`
    kernel_size, stride : (int, int)

    Returns
    -------
    cols_t : ndarray of shape `(kH*kW*C, N*H_out*W_out)`
        Row ``(a, b, c)`` holds input channel ``c`` at kernel offset ``(a, b)`` of every window, so
        ``cols_t.T`` equals ``im2col(x_padded, ...)``.

    With one input channel (every zoo network's first layer) each row is a shifted image slab, copied in long
    runs, where :func:`im2col` writes runs of only ``kW`` values ``kH*kW`` apart; the matrix products take the
    transpose for free (a BLAS flag). From two channels on, :func:`im2col`'s runs of ``kW*C`` values were as fast or
    faster, so :func:`conv2d_forward` uses this for one channel only (timings in ``docs/performance.md``).
    """
    kH, kW = kernel_size
    sH, sW = stride
    N, H, W, C = x_padded.shape
    H_out, W_out = conv_output_size(H, kH, sH), conv_output_size(W, kW, sW)
    cols_t = _buffer(workspace, "cols_t", (kH * kW * C, N * H_out * W_out), x_padded.dtype)
    rows = cols_t.reshape(kH, kW, C, N, H_out, W_out)  # a view of the buffer
    for a in range(kH):
        for b in range(kW):
            # (N, H_out, W_out, C) -> (C, N, H_out, W_out), row block (a, b) of cols_t
            np.copyto(rows[a, b], _offset(x_padded, a, b, H_out, W_out, stride).transpose(3, 0, 1, 2))
    return cols_t


def _offset(x_padded: np.ndarray, a: int, b: int, H_out: int, W_out: int, stride) -> np.ndarray:
    """The ``(N, H_out, W_out, C)`` strided view of ``x_padded`` that kernel offset ``(a, b)`` of every window sees."""
    sH, sW = stride
    return x_padded[:, a : a + sH * (H_out - 1) + 1 : sH, b : b + sW * (W_out - 1) + 1 : sW, :]


def _chunks(n: int, row_bytes: int, chunk_bytes: int):
    """``(start, stop)`` sample ranges whose im2col rows take about ``chunk_bytes``, one sample at least."""
    step = max(1, min(n, chunk_bytes // max(1, row_bytes)))
    return [(s, min(s + step, n)) for s in range(0, n, step)]


def _cols(x_chunk: np.ndarray, kernel_size, stride, workspace, block: int = 1) -> np.ndarray:
    """im2col of a chunk, ``(n*H_out*W_out, kH*kW*C)``; for one channel a transposed view of
    :func:`im2col_transposed`; with ``block`` above 1 the rows of :func:`convnp.ops.conv_blocked.im2col_blocked`,
    ``(n*H_out*W_out/block, kH*(kW + block - 1))``."""
    if block > 1:
        n, H_p, W_p, _ = x_chunk.shape
        kH, kW = kernel_size
        size = n * (H_p - kH + 1) * (W_p - kW + 1) * kH * (kW + block - 1) // block
        return im2col_blocked(x_chunk, kernel_size, block, _buffer(workspace, "cols", (size,), x_chunk.dtype))
    if x_chunk.shape[3] == 1:
        return im2col_transposed(x_chunk, kernel_size, stride, workspace).T  # (kH*kW, n*H_out*W_out) transposed
    return im2col(x_chunk, kernel_size, stride, workspace)


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
        What :func:`conv2d_backward` needs: the padded input (not the im2col matrix; ``x`` itself when nothing is
        padded, so ``x`` must not change before backward), the weight and settings.
    """
    kH, kW, C_in, C_out = weight.shape
    x_p = pad_hw(x, pads)  # (N, H + top + bottom, W + left + right, C_in); x itself when unpadded
    N, Hp, Wp, _ = x_p.shape
    H_out, W_out = conv_output_size(Hp, kH, stride[0]), conv_output_size(Wp, kW, stride[1])
    B = block_width(C_in, C_out, (kH, kW), stride, W_out) if block is None else block
    if not fits(B, C_in, stride, W_out):
        raise ValueError(f"block must be 1, or for one input channel and stride 1 a divisor of the output width "
                         f"{W_out}; got block={B} with {C_in} input channel(s) and stride {tuple(stride)}")
    rows = H_out * W_out // B  # im2col rows per sample
    # (kH*kW*C_in, C_out), or blocked: (kH*(kW + B - 1), B*C_out)
    w2d = weight.reshape(kH * kW * C_in, C_out) if B == 1 else block_weight(weight, B)
    out = np.empty((N * rows, B * C_out), dtype=np.result_type(x, weight))  # (N*H_out*W_out/B, B*C_out)
    chunks = _chunks(N, rows * w2d.shape[0] * x.itemsize, chunk_bytes)
    bias_row = None if bias is None else tiled(bias, H_out * W_out * C_out)  # one sample's worth
    for start, stop in chunks:
        part = out[start * rows : stop * rows]  # this chunk's rows, a view
        cols = _cols(x_p[start:stop], (kH, kW), stride, workspace, B)
        matmul_blocks(cols, w2d, part)
        if bias is not None:
            # While the chunk is still in cache, and one long row per sample (see convnp.ops.per_channel).
            part.reshape(stop - start, H_out * W_out * C_out)[...] += bias_row  # (n, H_out*W_out*C_out)
    # A batch that fit in one chunk leaves its whole im2col matrix in the buffer: backward reuses it unless another
    # forward has refilled the buffer since, which the token tells.
    kept, token = (cols if len(chunks) == 1 else None), object()
    if workspace is not None:
        workspace["filled_by"] = token
    cache = ConvCache(x_p, x.shape, weight, bias is not None, stride, pads, chunk_bytes, chunks, workspace, kept,
                      token, B)
    return out.reshape(N, H_out, W_out, C_out), cache  # (N*H_out*W_out/B, B*C_out) -> (N, H_out, W_out, C_out)


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
    _, H, W, C_in = cache.x_shape
    kH, kW, _, C_out = cache.weight.shape
    N, H_out, W_out, _ = dout.shape
    rows = H_out * W_out
    dout2d = dout.reshape(N * rows, C_out)  # (N*H_out*W_out, C_out)
    # A matrix-vector product sums over rows far faster than dout2d.sum(axis=0) for few columns.
    dbias = np.ones(N * rows, dtype=dout.dtype) @ dout2d if cache.has_bias else None
    dweight = _weight_grad(dout, cache)
    if not input_grad:
        return None, dweight, dbias
    # The convolution form computes dx at every input position from windows of the padded dout: when the input is
    # much larger than the output (a 5x5 kernel on a 14x14 map: 196 positions against 100), most of its work
    # multiplies zeros, and the per-offset products were faster (docs/performance.md).
    if tuple(cache.stride) == (1, 1) and H * W <= 1.5 * H_out * W_out:
        dx = _input_grad_stride1(dout, cache.weight, cache.x_shape, cache.pads, cache.workspace, cache.chunk_bytes)
        return dx, dweight, dbias
    w2d = cache.weight.reshape(kH * kW * C_in, C_out)  # (kH*kW*C_in, C_out)
    dx_p = np.zeros(cache.x_p.shape, dtype=dout.dtype)  # (N, H_p, W_p, C_in)
    for start, stop in cache.chunks:
        _col2im_add(dout2d[start * rows : stop * rows], w2d, dx_p[start:stop], (kH, kW), cache.stride,
                    (H_out, W_out), cache.workspace)
    (top, _), (left, _) = cache.pads
    return dx_p[:, top : top + H, left : left + W, :], dweight, dbias


def _weight_grad(dout: np.ndarray, cache: ConvCache) -> np.ndarray:
    """``dweight = cols.T @ dout``, of shape ``(kH, kW, C_in, C_out)``, summed chunk by chunk.

    Each chunk's im2col rows are rebuilt from the padded input (cheaper than keeping every chunk), unless the
    forward's single chunk is still in the workspace buffer.
    """
    kH, kW, C_in, C_out = cache.weight.shape
    B, workspace = cache.block, cache.workspace
    kept = cache.kept
    if kept is not None and workspace is not None and workspace.get("filled_by") is not cache.token:
        kept = None  # another forward refilled the buffer since
    N, H_out, W_out, _ = dout.shape
    block_rows = H_out * W_out // B
    # The gradient in the forward product's shape: (kH*kW*C_in, C_out), or blocked (kH*(kW + B - 1), B*C_out) with
    # dout's rows B at a time.
    dout_blocks = dout.reshape(N * block_rows, B * C_out)  # (N*H_out*W_out/B, B*C_out), the same memory
    dweight = np.zeros((kH * kW * C_in if B == 1 else kH * (kW + B - 1), B * C_out), dtype=dout.dtype)
    partial = np.empty_like(dweight)
    for start, stop in cache.chunks:
        cols = kept if kept is not None else _cols(cache.x_p[start:stop], (kH, kW), cache.stride, workspace, B)
        matmul_tn(cols, dout_blocks[start * block_rows : stop * block_rows], partial, workspace)
        dweight += partial
    if B == 1:
        return dweight.reshape(cache.weight.shape)  # (kH*kW*C_in, C_out) -> (kH, kW, C_in, C_out)
    return fold_block_grad(dweight, (kH, kW), B)  # the blocks folded back onto the kernel


def _input_grad_stride1(dout, weight, x_shape, pads, workspace, chunk_bytes: int) -> np.ndarray:
    """``dx`` of a stride-1 convolution, as the convolution of the zero-padded ``dout`` with the flipped kernel.

    ``dx[n, y, x, c] = sum_{a, b, k} dout[n, y + top - a, x + left - b, k] * weight[a, b, c, k]``, terms outside
    ``dout`` being zero: im2col over ``dout`` padded by ``kH - 1`` and ``kW - 1`` (only the part whose windows land
    on ``x``, not on its padding), times ``weight`` flipped in both spatial axes with its channel axes swapped,
    ``(kH*kW*C_out, C_in)``. One product per chunk with no adds afterwards, faster than the per-offset products and
    adds of :func:`_col2im_add` (``docs/performance.md``).
    """
    N, H, W, C_in = x_shape
    kH, kW, _, C_out = weight.shape
    (top, _), (left, _) = pads
    # (kH, kW, C_in, C_out) flipped -> (kH, kW, C_out, C_in) -> (kH*kW*C_out, C_in)
    w_flip = np.ascontiguousarray(weight[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(kH * kW * C_out, C_in)
    dx = np.empty((N * H * W, C_in), dtype=dout.dtype)  # (N*H*W, C_in)
    rows = H * W
    _, H_out, W_out, _ = dout.shape
    # dout padded by kH - 1 rows and kW - 1 columns of zeros on each side, cut to the rows and columns whose windows
    # land on x: dout's row 0 sits at row r0 of that region (column c0), clipped where the padding exceeds the kernel.
    r0, c0 = kH - 1 - top, kW - 1 - left
    rows_in = slice(max(r0, 0), max(min(r0 + H_out, H + kH - 1), 0))
    cols_in = slice(max(c0, 0), max(min(c0 + W_out, W + kW - 1), 0))
    chunks = _chunks(N, rows * w_flip.shape[0] * dout.itemsize, chunk_bytes)
    # The chunk's padded dout, contiguous; reused between chunks and calls: only the part under dout is rewritten,
    # so the zeros around it are written once.
    shape = (chunks[0][1] - chunks[0][0], H + kH - 1, W + kW - 1, C_out)
    padded = None if workspace is None else workspace.get("dout_padded")
    if padded is None or padded.shape != shape or padded.dtype != dout.dtype:
        padded = np.zeros(shape, dtype=dout.dtype)
        if workspace is not None:
            workspace["dout_padded"] = padded
    for start, stop in chunks:
        region = padded[: stop - start]  # (n, H + kH - 1, W + kW - 1, C_out), contiguous
        region[:, rows_in, cols_in] = dout[start:stop, rows_in.start - r0 : rows_in.stop - r0,
                                           cols_in.start - c0 : cols_in.stop - c0]
        cols = im2col(region, (kH, kW), (1, 1), workspace, key="dcols")  # (n*H*W, kH*kW*C_out)
        matmul_blocks(cols, w_flip, dx[start * rows : stop * rows])
    return dx.reshape(N, H, W, C_in)  # (N*H*W, C_in) -> (N, H, W, C_in)


def _col2im_add(d, w2d, dx_p, kernel_size, stride, out_hw, workspace) -> None:
    """Add one chunk's ``dcols = d @ w2d.T`` into ``dx_p`` (the chunk's samples), one kernel offset at a time.

    ``d`` is ``(n*H_out*W_out, C_out)``, ``w2d`` is ``(kH*kW*C_in, C_out)``, ``dx_p`` is ``(n, H_p, W_p, C_in)``.
    ``dcols`` is made offset-major, ``(kH*kW, n*H_out*W_out, C_in)`` (one product per offset), so each offset's
    values form one contiguous block that adds into the strided slice of ``dx_p`` in runs of ``W_out*C_in``. In
    the window-major layout of :func:`im2col` the runs were only ``C_in`` long, and for 16 channels the adds took
    longer than the products.
    """
    (kH, kW), (H_out, W_out) = kernel_size, out_hw
    n, _, _, C_in = dx_p.shape
    m = n * H_out * W_out
    dcols = _buffer(workspace, "dcols", (kH * kW, m, C_in), d.dtype)
    if C_in == 1:  # one product: (kH*kW, C_out) @ (C_out, m)
        np.matmul(w2d, d.T, out=dcols.reshape(kH * kW, m))  # dcols as (kH*kW, m), C_in being 1
    else:  # (m, C_out) @ (kH*kW, C_out, C_in) -> (kH*kW, m, C_in)
        np.matmul(d, w2d.reshape(kH * kW, C_in, -1).transpose(0, 2, 1), out=dcols)
    offsets = dcols.reshape(kH, kW, n, H_out, W_out, C_in)  # a view: offset (a, b) -> (n, H_out, W_out, C_in)
    for a in range(kH):
        for b in range(kW):
            _offset(dx_p, a, b, H_out, W_out, stride)[...] += offsets[a, b]
