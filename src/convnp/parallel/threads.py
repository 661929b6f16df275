"""Using several cores with threads: each batch split across a small pool of threads, one model replica per thread.

NumPy's element-wise work runs on one core, and only BLAS uses more; so rather than asking BLAS for threads, convnp
splits the batch. Each thread runs forward and backward on its shard with BLAS single-threaded inside it (NumPy and
BLAS release the GIL while they work). The replicas (:func:`convnp.parallel.replicate.replicate`) share the
parameter arrays, so an optimizer step seen by one is seen by all; each keeps its own gradients, caches and scratch
buffers, and the gradients are summed in a fixed order. The mean loss over the batch is the shard means weighted by
shard size, so each shard's output gradient is scaled by ``shard size / batch size``
(:func:`convnp.parallel.shard.shard_step`).

With one thread this is exactly the ordinary step. With several, results differ from one thread by float rounding
only (the sums are grouped differently); at a fixed thread count they are deterministic.

BatchNorm and Dropout look across the batch, so the shards cooperate (:mod:`convnp.parallel.shard`): BatchNorm adds
its per-channel sums over the shards with an all-reduce among the threads, so it normalises with the whole batch's
statistics; Dropout draws the whole batch's mask in every replica and keeps its own rows. Before each step every
replica copies the first one's running statistics and Generator states. A model with a layer that declares itself
not shardable trains unsplit. Inference splits any model: it reads the first replica's running statistics.

This module also holds the default worker count (:func:`set_num_threads`, :func:`get_num_threads`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from convnp.losses import SoftmaxCrossEntropy
from convnp.parallel.blas import blas_threads
from convnp.parallel.malloc import keep_freed_memory
from convnp.parallel.replicate import replicate, share_state, sync_state
from convnp.parallel.shard import Shard, ThreadAllreduce, collective, set_shard, shard_bounds, shard_step

_default_threads: int | None = None


def set_num_threads(n: int | None) -> None:
    """Set how many threads training and inference use by default; ``None`` restores the default rule."""
    global _default_threads
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"set_num_threads: expected a positive integer or None, got {n!r}")
    _default_threads = n


def configured_num_threads() -> int | None:
    """The thread count set by :func:`set_num_threads`, else by ``$CONVNP_NUM_THREADS``; None when neither is."""
    if _default_threads is not None:
        return _default_threads
    env = os.environ.get("CONVNP_NUM_THREADS", "")
    if not env.strip():
        return None
    try:
        value = int(env)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"CONVNP_NUM_THREADS must be a positive integer, got {env!r}")
    return value


def get_num_threads() -> int:
    """The default thread count: :func:`set_num_threads`'s, else ``$CONVNP_NUM_THREADS``, else every core."""
    configured = configured_num_threads()
    return configured if configured is not None else os.cpu_count() or 1


class DataParallel:
    """Runs a model's training steps and inference on shards of each batch, in ``n_threads`` threads.

    Parameters
    ----------
    model : Sequential
    n_threads : int
    label_smoothing : float
        Passed to each replica's :class:`~convnp.losses.SoftmaxCrossEntropy` (one per replica: each caches its
        shard's probabilities).
    """

    def __init__(self, model, n_threads: int, label_smoothing: float = 0.0):
        if not isinstance(n_threads, int) or n_threads < 1:
            raise ValueError(f"DataParallel: n_threads must be a positive integer, got {n_threads!r}")
        keep_freed_memory()  # once per process: steps reuse freed blocks instead of faulting in fresh pages
        self.model = model
        self.n_threads = n_threads
        # A layer that cannot take part in a split batch (see Sequential.shardable) makes the model train unsplit.
        n_replicas = n_threads if model.shardable else 1
        self.replicas = [model] + [replicate(model) for _ in range(n_replicas - 1)]
        self.losses = [SoftmaxCrossEntropy(label_smoothing) for _ in self.replicas]
        self.pool = ThreadPoolExecutor(n_threads, thread_name_prefix="convnp") if n_threads > 1 else None
        self._inference_replicas = None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def _map(self, fn, jobs):
        # One BLAS thread per worker: the workers are the parallelism. With one worker too, so that --threads 1
        # uses one core: BLAS's own second thread next to a busy process made training steps several times slower.
        with blas_threads(1):
            if self.pool is None or len(jobs) == 1:
                return [fn(*job) for job in jobs]
            futures = [self.pool.submit(fn, *job) for job in jobs]
            wait(futures)
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            # A failing shard breaks the others' all-reduce barrier; report the failure, not the broken barrier.
            raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
        return [f.result() for f in futures]

    def train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int, bool]:
        """Forward and backward on ``(x, y)``; leaves the summed gradients in the model's ``grads``.

        Returns the batch's mean loss, the number of correct predictions, and whether every logit was finite.
        """
        n = len(y)
        bounds = shard_bounds(n, len(self.replicas))
        split = len(bounds) > 1
        allreduce = ThreadAllreduce(len(bounds)) if split else None
        # Without collectives no shard waits for another in mid-step: the finite flags are combined at the end.
        agree = split and collective(self.model)
        for i, (start, stop) in enumerate(bounds):
            if i > 0:
                sync_state(self.replicas[i], self.model)  # running statistics, dropout Generators
            set_shard(self.replicas[i], Shard(start, stop, n, allreduce.for_party(i)) if split else None)

        def work(i, start, stop):
            try:
                return shard_step(self.replicas[i], self.losses[i], x[start:stop], y[start:stop], n,
                                  allreduce.for_party(i) if agree else None)
            except BaseException:
                if allreduce is not None:
                    allreduce.abort()  # release the shards waiting for this one
                raise

        try:
            results = self._map(work, [(i, a, b) for i, (a, b) in enumerate(bounds)])
        finally:
            for replica in self.replicas[: len(bounds)]:
                set_shard(replica, None)  # a later plain forward must not wait for shards that are gone
        if not all(r[2] for r in results):
            return float("nan"), 0, False
        if split:
            total = self.model.gradients()  # replica 0's arrays, fresh from this backward: safe to add into
            for replica in self.replicas[1 : len(bounds)]:
                for name, grad in replica.gradients().items():
                    total[name] += grad
        return float(sum(r[0] for r in results)), sum(r[1] for r in results), True

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits for ``x`` in inference mode, the shards computed in parallel."""
        if self._inference_replicas is None:
            self._inference_replicas = self.replicas + [
                replicate(self.model) for _ in range(self.n_threads - len(self.replicas))
            ]
        replicas = self._inference_replicas
        bounds = shard_bounds(len(x), len(replicas))
        for replica in replicas[1:]:
            share_state(replica, self.model)  # inference reads the first replica's running statistics
        parts = self._map(lambda i, a, b: replicas[i].forward(x[a:b]), [(i, a, b) for i, (a, b) in enumerate(bounds)])
        return np.concatenate(parts)
