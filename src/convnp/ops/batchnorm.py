"""Batch normalisation over the last (channel) axis, for ``(N, C)`` and channels-last ``(N, H, W, C)`` alike.

Every statistic is per channel, over all the other axes: ``m = x.size / C`` values per channel (``N`` for
``(N, C)``, ``N * H * W`` for ``(N, H, W, C)``).

Forward: ``xhat = (x - mean) / sqrt(var + eps)``, ``out = gamma * xhat + beta``, computed as
``xc * (gamma / sqrt(var + eps)) + beta`` with ``xc = x - mean``: no normalised copy is made, the backward works
from ``xc``. In training ``mean`` and ``var`` are the batch's own (``var`` the biased one, divided by ``m``); in
evaluation they are fixed numbers (the running statistics), which makes the layer a per-channel affine map.

Backward with batch statistics (``mean`` and ``var`` depend on ``x``), ``dxhat = dout * gamma``, sums over the
non-channel axes:
``dx = (1 / (m * std)) * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))``;
with fixed statistics simply ``dx = dout * gamma / std``. In both cases ``dgamma = sum(dout * xhat)`` and
``dbeta = sum(dout)``.

References: Ioffe & Szegedy 2015, "Batch Normalization" (Algorithm 1 and section 3); PyTorch ``BatchNorm2d``
(https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html) for the running-statistics update; the compact
backward is the one of the CS231n batch-normalisation notes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from convnp.ops.per_channel import channel_dot, channel_sum, tiled, wide


class BatchNormCache(NamedTuple):
    """What :func:`batchnorm_backward` needs, and the statistics for the caller's running averages.

    Attributes
    ----------
    x : ndarray of shape `(N, k * C)` or None
        With fixed statistics: the input, one row per sample (the layout of :func:`convnp.ops.per_channel.wide`;
        ``k`` values per channel per sample), a view, not a copy, so the input must not change before backward.
        None after a training forward, which keeps ``xc`` instead (keeping both would hold one more activation).
    xc : ndarray of shape `(N, k * C)` or None
        ``x - mean``, kept from a training forward (None with fixed statistics: the backward makes it then).
    inv_std : ndarray of shape `(C,)`
        ``1 / sqrt(var + eps)``.
    gamma : ndarray of shape `(C,)`
    batch_stats : bool
        True when ``mean`` and ``var`` came from ``x`` itself (training), so the backward differentiates them too.
    mean, var : ndarray of shape `(C,)`
        The statistics used; ``var`` is the biased one when it is the batch's.
    x_shape : tuple
        The input's shape, ``(N, C)`` or ``(N, H, W, C)``.
    count : int
        Values per channel that the statistics came from: ``m``, or the whole batch's when it is split into shards.
    allreduce : callable or None
        The sum over shards (:mod:`convnp.parallel.shard`) that the statistics went through, and the backward's sums too.
    """

    x: np.ndarray
    xc: np.ndarray | None
    inv_std: np.ndarray
    gamma: np.ndarray
    batch_stats: bool
    mean: np.ndarray
    var: np.ndarray
    x_shape: tuple
    count: int
    allreduce: object


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, mean: np.ndarray | None = None,
                      var: np.ndarray | None = None, allreduce=None, count: int | None = None):
    """Normalise ``x`` per channel, then scale and shift.

    Parameters
    ----------
    x : ndarray of shape `(N, ..., C)`
        Channels last: `(N, C)` or `(N, H, W, C)`. With fixed statistics it is kept in the cache (not copied), so
        it must not change before backward.
    gamma, beta : ndarray of shape `(C,)`
    eps : float
        Added to the variance before the square root.
    mean, var : ndarray of shape `(C,)`, optional
        Fixed statistics (evaluation mode). Both ``None`` (the default): use the batch's mean and biased variance
        (training mode), which needs more than one value per channel.
    allreduce : callable, optional
        For a batch split into shards (:mod:`convnp.parallel.shard`): sums a ``(C,)`` array over every shard, so the
        statistics are the whole batch's. ``None``: ``x`` is the whole batch.
    count : int, optional
        With ``allreduce``: the values per channel in the whole batch (``M`` summed over the shards).

    Returns
    -------
    out : ndarray of the shape of `x`
    cache : BatchNormCache
        ``cache.mean`` and ``cache.var`` are the statistics used; in training the caller turns ``cache.var`` into
        the unbiased estimate ``var * m / (m - 1)`` for its running average.
    """
    if (mean is None) != (var is None):
        raise ValueError("batchnorm_forward: give both mean and var (evaluation) or neither (training)")
    C = x.shape[-1]
    xw = wide(x)  # (N, k*C), a view for contiguous x
    width = xw.shape[1]
    batch_stats = mean is None
    total = (lambda a: a) if allreduce is None else allreduce  # sum over the shards of the batch
    count = x.size // C if count is None else count
    if batch_stats:
        if count < 2:
            raise ValueError(f"batchnorm_forward: batch statistics need more than one value per channel, got {count}")
        mean = total(channel_sum(xw, C)) / count  # (C,)
        blocks = _row_blocks(xw)
        xc, var = _centre(xw, mean, total, count, blocks)
        inv_std = 1.0 / np.sqrt(var + eps)  # (C,)
        out = np.empty_like(xw)
        scale_row, beta_row = tiled(gamma * inv_std, width), tiled(beta, width)
        for rows in blocks:
            np.multiply(xc[rows], scale_row, out=out[rows])
            out[rows] += beta_row
    else:  # a fixed per-channel affine map: x - mean is not needed
        xc, inv_std = None, 1.0 / np.sqrt(var + eps)
        out = np.multiply(xw, tiled(gamma * inv_std, width))
        out += tiled(beta - mean * gamma * inv_std, width)
    cache = BatchNormCache(None if batch_stats else xw, xc, inv_std, gamma, batch_stats, mean, var, x.shape, count,
                           allreduce)
    return out.reshape(x.shape), cache  # (N, k*C) -> (N, ..., C)


def _centre(xw: np.ndarray, mean: np.ndarray, total, count: int, blocks: list[slice]):
    """``xc = xw - mean`` (wide, ``(N, k*C)``) and the biased variance ``(C,)`` from it, each row block of
    ``blocks`` (:func:`_row_blocks`) squared and summed while it is still in cache. Two passes over the data (the
    mean first): no cancellation of ``E[x^2] - E[x]^2``."""
    C, width = mean.shape[0], xw.shape[1]
    xc = np.empty_like(xw)  # (N, k*C)
    squares = np.zeros(width, dtype=xw.dtype)  # (k*C,)
    mean_row = tiled(mean, width)
    for rows in blocks:
        np.subtract(xw[rows], mean_row, out=xc[rows])
        squares += np.einsum("ij,ij->j", xc[rows], xc[rows])
    return xc, total(squares.reshape(-1, C).sum(axis=0)) / count  # (k*C,) -> (k, C) -> (C,)


def batchnorm_backward(dout: np.ndarray, cache: BatchNormCache):
    """Gradients of :func:`batchnorm_forward`.

    Parameters
    ----------
    dout : ndarray of the shape of `x`
    cache : BatchNormCache

    Returns
    -------
    dx : ndarray of the shape of `x`
    dgamma, dbeta : ndarray of shape `(C,)`
        Of this shard's rows only when the batch was split (the caller adds the shards' parameter gradients, as
        for every other layer); ``dx`` uses the whole batch's sums.

    With ``xhat = xc * inv_std``, ``dgamma = inv_std * sum(dout * xc)``. Training mode uses ``sum(dxhat) = gamma *
    dbeta`` and ``sum(dxhat * xhat) = gamma * dgamma`` to write the compact formula as
    ``dx = (gamma * inv_std / m) * (m * dout - dbeta - xhat * dgamma)``, which is per channel
    ``dx = dout * p - (xc * q + r)``: two channel sums and four passes over the data.
    """
    gamma, inv_std, count, allreduce = cache.gamma, cache.inv_std, cache.count, cache.allreduce
    C = gamma.shape[0]
    dout_w = wide(dout)  # (N, k*C)
    width = dout_w.shape[1]
    xc = cache.xc if cache.xc is not None else cache.x - tiled(cache.mean, width)  # (N, k*C)
    dbeta = channel_sum(dout_w, C)  # (C,)
    dgamma = channel_dot(dout_w, xc, C) * inv_std  # (C,)
    p = gamma * inv_std  # (C,)
    if not cache.batch_stats:
        return (dout_w * tiled(p, width)).reshape(cache.x_shape), dgamma, dbeta  # a fixed per-channel scale
    sum_dbeta, sum_dgamma = dbeta, dgamma
    if allreduce is not None:  # the statistics came from the whole batch, so do these sums
        sum_dbeta, sum_dgamma = allreduce(np.concatenate([dbeta, dgamma])).reshape(2, C)
    q = p * inv_std * sum_dgamma / count  # (C,): xhat * dgamma * p / m = xc * q
    r = p * sum_dbeta / count  # (C,)
    p_row, q_row, r_row = tiled(p, width), tiled(q, width), tiled(r, width)
    dx = np.empty_like(dout_w)  # (N, k*C)
    blocks = _row_blocks(dout_w)
    shift = np.empty_like(dout_w[blocks[0]])  # one block's xc * q + r, reused
    for rows in blocks:
        part = shift[: rows.stop - rows.start]
        np.multiply(xc[rows], q_row, out=part)
        part += r_row
        np.multiply(dout_w[rows], p_row, out=dx[rows])
        dx[rows] -= part
    return dx.reshape(cache.x_shape), dgamma, dbeta  # (N, k*C) -> (N, ..., C)


#: Bytes of one row block of :func:`_row_blocks`: a few such blocks stay in the L2 cache together.
BLOCK_BYTES = 1 << 18


def _row_blocks(a: np.ndarray) -> list[slice]:
    """Slices of about :data:`BLOCK_BYTES` of ``a``'s rows (one row at least), so that the several passes of the
    element-wise arithmetic over a block find it in cache rather than in memory."""
    step = max(1, BLOCK_BYTES // max(1, a.shape[1] * a.itemsize))
    return [slice(i, min(i + step, a.shape[0])) for i in range(0, a.shape[0], step)] or [slice(0, 0)]
