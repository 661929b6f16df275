"""Matrix products of the tall, narrow shapes that convolutions make, cut into row blocks.

A convolution's products are ``(M, K) @ (K, N)`` with ``M`` in the thousands (every output pixel of a chunk) and
``K``, ``N`` small (``kH*kW*C_in`` and ``C_out``, often 144 and 16). For such a product, a general BLAS routine first
copies ("packs") the whole tall operand into its own layout, and with only ``N`` columns each packed value is used
``N`` times, so the packing costs as much as the arithmetic. OpenBLAS has a second, unpacked kernel for products
of at most :data:`SMALL_PRODUCT` multiply-adds (``M*K*N``) on the CPUs it has one for (AVX-512). Handing it the
rows a block at a time, as one stacked :func:`numpy.matmul` (one BLAS call per block, the loop in C), runs that
kernel instead. Where no such kernel runs (AVX2) the blocks were slower, and products are made whole
(:data:`USE_BLOCKS`). The figures behind the block sizes are in ``docs/performance.md``.

Results equal the plain products up to float rounding: :func:`matmul_tn` sums the blocks' partial products.
"""

from __future__ import annotations

import numpy as np

from convnp.ops.machine import small_matrix_kernel

#: Whether products are cut into blocks at all: only where OpenBLAS's unpacked kernel runs (:mod:`convnp.ops.machine`).
USE_BLOCKS = small_matrix_kernel()

#: Most multiply-adds, ``rows * K * N``, of one block: the size OpenBLAS still hands its unpacked kernel.
SMALL_PRODUCT = 1_000_000

#: The same for :func:`matmul_tn`'s transposed blocks, whose timings peaked at about 60% of that size.
SMALL_PRODUCT_TN = 600_000

#: Fewest rows a block may have; below this the per-call cost outweighs the unpacked kernel's gain.
MIN_BLOCK_ROWS = 64

#: Fewest inner-dimension values ``K``: a first layer's 9 (3x3 on one channel) ran slower in blocks.
MIN_INNER = 16


def block_rows(K: int, N: int, limit: int = SMALL_PRODUCT) -> int:
    """Rows per block for a product with ``K`` inner values and ``N`` columns, at most ``limit`` multiply-adds a
    block, or 0 to multiply in one piece."""
    rows = limit // max(1, K * N)
    return rows if USE_BLOCKS and rows >= MIN_BLOCK_ROWS and K >= MIN_INNER else 0


def matmul_blocks(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[...] = a @ b``, in row blocks of :func:`block_rows` where that applies.

    Parameters
    ----------
    a : ndarray of shape `(M, K)`
        Blocked only when C-contiguous (the blocks are then views); otherwise multiplied whole.
    b : ndarray of shape `(K, N)`
    out : ndarray of shape `(M, N)`, C-contiguous

    Returns
    -------
    out
    """
    M, K = a.shape
    N = b.shape[1]
    m = block_rows(K, N)
    if m == 0 or M < 2 * m or not a.flags.c_contiguous or not out.flags.c_contiguous:
        return np.matmul(a, b, out=out)
    full = M - M % m
    # (full, K) -> (full/m, m, K) and (full, N) -> (full/m, m, N): one BLAS call per block, looped in C
    np.matmul(a[:full].reshape(-1, m, K), b, out=out[:full].reshape(-1, m, N))
    if full < M:
        np.matmul(a[full:], b, out=out[full:])
    return out


def matmul_tn(a: np.ndarray, d: np.ndarray, out: np.ndarray, workspace: dict | None = None) -> np.ndarray:
    """``out[...] = a.T @ d`` (a weight gradient), as the sum of row blocks' products where :func:`block_rows`
    applies (with :data:`SMALL_PRODUCT_TN`).

    Parameters
    ----------
    a : ndarray of shape `(M, K)`
    d : ndarray of shape `(M, N)`
    out : ndarray of shape `(K, N)`
    workspace : dict, optional
        Keeps the blocks' partial products, ``(M/m, K, N)``, between calls under ``"tn_parts"``.

    Returns
    -------
    out
    """
    M, K = a.shape
    N = d.shape[1]
    m = block_rows(K, N, SMALL_PRODUCT_TN)
    if m == 0 or M < 2 * m or not a.flags.c_contiguous or not d.flags.c_contiguous:
        return np.matmul(a.T, d, out=out)
    full = M - M % m
    size = (full // m) * K * N
    buf = None if workspace is None else workspace.get("tn_parts")
    if buf is None or buf.size < size or buf.dtype != out.dtype:
        buf = np.empty(size, dtype=out.dtype)
        if workspace is not None:
            workspace["tn_parts"] = buf
    parts = buf[:size].reshape(full // m, K, N)  # one partial product per block
    # (full, K) -> (full/m, m, K), transposed per block to (full/m, K, m); (full, N) -> (full/m, m, N)
    np.matmul(a[:full].reshape(-1, m, K).transpose(0, 2, 1), d[:full].reshape(-1, m, N), out=parts)
    np.sum(parts, axis=0, out=out)
    if full < M:
        out += a[full:].T @ d[full:]
    return out
