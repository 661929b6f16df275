"""Batch normalisation over the last (channel) axis, for ``(N, C)`` and channels-last ``(N, H, W, C)`` alike.

Every statistic is per channel, over all the other axes: ``m = x.size / C`` values per channel (``N`` for
``(N, C)``, ``N * H * W`` for ``(N, H, W, C)``).

Forward: ``xhat = (x - mean) / sqrt(var + eps)``, ``out = gamma * xhat + beta``. In training ``mean`` and ``var``
are the batch's own (``var`` the biased one, divided by ``m``); in evaluation they are fixed numbers (the running
statistics), which makes the layer a per-channel affine map.

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

from convnp.ops.per_channel import channel_sum, tiled, wide


class BatchNormCache(NamedTuple):
    """What :func:`batchnorm_backward` needs, and the batch statistics for the caller's running averages.

    Attributes
    ----------
    xhat : ndarray of shape `(N, k * C)`
        The normalised input, one row per sample (the layout of :func:`convnp.ops.per_channel.wide`; ``k`` values
        per channel per sample).
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

    xhat: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray
    batch_stats: bool
    mean: np.ndarray
    var: np.ndarray
    x_shape: tuple
    count: int
    allreduce: object


def batchnorm_forward(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    eps: float,
    mean: np.ndarray | None = None,
    var: np.ndarray | None = None,
    allreduce=None,
    count: int | None = None,
):
    """Normalise ``x`` per channel, then scale and shift.

    Parameters
    ----------
    x : ndarray of shape `(N, ..., C)`
        Channels last: `(N, C)` or `(N, H, W, C)`.
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
        xc = xw - tiled(mean, width)  # (N, k*C)
        var = total(channel_sum(xc * xc, C)) / count  # (C,), two passes: no cancellation of E[x^2] - E[x]^2
    else:
        xc = xw - tiled(mean, width)
    inv_std = 1.0 / np.sqrt(var + eps)  # (C,)
    xhat = np.multiply(xc, tiled(inv_std, width), out=xc)  # (N, k*C), reuses xc's buffer
    out = xhat * tiled(gamma, width)
    out += tiled(beta, width)
    cache = BatchNormCache(xhat, inv_std, gamma, batch_stats, mean, var, x.shape, count, allreduce)
    return out.reshape(x.shape), cache  # (N, k*C) -> (N, ..., C)


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

    Training mode uses ``sum(dxhat) = gamma * dbeta`` and ``sum(dxhat * xhat) = gamma * dgamma`` to write the
    compact formula as ``dx = (gamma / (m * std)) * (m * dout - dbeta - xhat * dgamma)``: two channel sums in all.
    """
    xhat, gamma, count, allreduce = cache.xhat, cache.gamma, cache.count, cache.allreduce
    C = gamma.shape[0]
    width = xhat.shape[1]
    dout_w = wide(dout)  # (N, k*C)
    dbeta = channel_sum(dout_w, C)  # (C,)
    dgamma = channel_sum(dout_w * xhat, C)  # (C,)
    if cache.batch_stats:
        sum_dbeta, sum_dgamma = dbeta, dgamma
        if allreduce is not None:  # the statistics came from the whole batch, so do these sums
            sum_dbeta, sum_dgamma = allreduce(np.concatenate([dbeta, dgamma])).reshape(2, C)
        dx = xhat * tiled(-sum_dgamma, width)  # (N, k*C), then the other terms in place
        dx += count * dout_w
        dx -= tiled(sum_dbeta, width)
        dx *= tiled(gamma * cache.inv_std / count, width)
    else:
        dx = dout_w * tiled(gamma * cache.inv_std, width)  # a fixed per-channel scale
    return dx.reshape(cache.x_shape), dgamma, dbeta  # (N, k*C) -> (N, ..., C)
