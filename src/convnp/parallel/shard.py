"""A shard of a training batch: which rows a replica holds, what it computes, and how the shards add up numbers
across the whole batch.

When a training batch is split into shards (threads in :mod:`convnp.parallel.threads`, forked processes in
:mod:`convnp.parallel.processes`, MPI processes in :mod:`convnp.parallel.mpi`), most layers need nothing but their
own shard. Two do:

- BatchNorm normalises with the statistics of the *whole* batch, so its per-channel sums are added across shards
  (an all-reduce) before anything is normalised, and likewise the two sums of its backward pass;
- Dropout draws the mask of the whole batch from its Generator and keeps its own rows, so every shard sees the
  masks one unsplit run would have drawn, and every replica's Generator advances alike.

With these two, a split step computes what the unsplit step computes, up to the order of float additions.

The layers' side of this is their hook (:class:`convnp.layers.base.Layer`): a layer reads its :class:`Shard` from
its ``shard`` attribute (``None``: the batch is not split), says with ``collective = True`` that it calls the
shard's ``allreduce``, and with ``shardable = False`` that it cannot train on a shard at all.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Shard:
    """Rows ``start:stop`` of a batch of ``total`` samples.

    ``allreduce(a)`` returns the element-wise sum of ``a`` over every shard of the batch, the same array on every
    shard; each shard must call it the same number of times, in the same order (it is a collective).
    """

    start: int
    stop: int
    total: int
    allreduce: Callable[[np.ndarray], np.ndarray]


def set_shard(model, shard: Shard | None) -> None:
    """Tell every layer of ``model`` which rows of the batch it sees (``None``: all of them)."""
    for layer in model.layers:
        layer.shard = shard


def collective(model) -> bool:
    """Whether a split training step of ``model`` makes the shards wait for each other (a layer calls
    ``allreduce``)."""
    return any(layer.collective for layer in model.layers)


def shard_bounds(n: int, n_shards: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of ``n_shards`` contiguous, near-equal parts of ``range(n)`` (empty parts dropped)."""
    step = n / n_shards  # edge i is round(i * n / n_shards), halves to even (as np.linspace(...).round() gave)
    edges = [round(i * step) for i in range(n_shards)] + [n]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def shard_step(model, loss_fn, x: np.ndarray, y: np.ndarray, total: int, agree=None) -> tuple[float, int, bool]:
    """Forward and backward of one shard ``(x, y)`` of a training batch of ``total`` samples.

    The output gradient is scaled by ``len(y) / total``, so the shards' gradients add up to the batch's mean
    gradient. ``agree``, when given, is the shards' all-reduce: every shard then learns whether any produced a
    non-finite logit, and all stop, or none (a model whose backward calls the all-reduce needs them all).

    Returns this shard's share of the batch's mean loss, its number of correct predictions, and whether its
    logits (with ``agree``: every shard's) were all finite; without them no backward is run.
    """
    logits = model.forward(x, training=True)
    bad = np.array([0.0 if np.isfinite(logits).all() else 1.0])
    if agree is not None:
        bad = agree(bad)
    if bad[0]:
        return 0.0, 0, False
    loss = loss_fn.forward(logits, y)
    dlogits = loss_fn.backward()
    if len(y) != total:
        dlogits *= np.asarray(len(y) / total, dtype=dlogits.dtype)
    model.backward(dlogits, input_grad=False)
    return loss * len(y) / total, int(np.sum(logits.argmax(axis=1) == y)), True


class ThreadAllreduce:
    """An all-reduce among ``n_parties`` threads: each passes its index and array and gets the sum of all.

    Every thread adds the arrays in index order, so all get the identical result and the sum does not depend on
    which thread arrived first. If a thread fails, :meth:`abort` breaks the barrier so the others stop waiting
    (they raise ``threading.BrokenBarrierError``) instead of hanging.
    """

    def __init__(self, n_parties: int, timeout: float | None = None):
        self._slots: list[np.ndarray | None] = [None] * n_parties
        self._barrier = threading.Barrier(n_parties, timeout=timeout)

    def __call__(self, index: int, a: np.ndarray) -> np.ndarray:
        self._slots[index] = a
        self._barrier.wait()  # every slot filled
        total = np.array(self._slots[0], copy=True)
        for other in self._slots[1:]:
            total += other
        self._barrier.wait()  # every thread has read every slot before any can refill its own
        return total

    def for_party(self, index: int) -> Callable[[np.ndarray], np.ndarray]:
        """The ``allreduce`` function of :class:`Shard` for thread ``index``."""
        return lambda a: self(index, a)

    def abort(self) -> None:
        self._barrier.abort()
