"""Which part of a batch a model replica holds, and how the replicas add up numbers across the whole batch.

When a training batch is split into shards (threads in :mod:`convnp.parallel`, processes in
:mod:`convnp.distributed`), most layers need nothing but their own shard. Two do:

- BatchNorm normalises with the statistics of the *whole* batch, so its per-channel sums are added across shards
  (an all-reduce) before anything is normalised, and likewise the two sums of its backward pass;
- Dropout draws the mask of the whole batch from its Generator and keeps its own rows, so every shard sees the
  masks one unsplit run would have drawn, and every replica's Generator advances alike.

With these two, a split step computes what the unsplit step computes, up to the order of float additions.

A layer reads its :class:`Shard` from its ``shard`` attribute; ``None`` means the batch is not split.
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
