"""Using several cores: each training batch split across a small pool of threads, one model replica per thread.

NumPy's element-wise work runs on one core, and only BLAS uses more; so rather than asking BLAS for threads, convnp
splits the batch. Each thread runs forward and backward on its shard with BLAS single-threaded inside it (NumPy and
BLAS release the GIL while they work). The replicas share the parameter arrays, so an optimizer step seen by one is
seen by all; each keeps its own gradients, caches and scratch buffers, and the gradients are summed in a fixed
order. The mean loss over the batch is the shard means weighted by shard size, so each shard's output gradient is
scaled by ``shard size / batch size``.

With one thread this is exactly the ordinary step. With several, results differ from one thread by float rounding
only (the sums are grouped differently); at a fixed thread count they are deterministic.

BatchNorm and Dropout look across the batch, so the shards cooperate (:mod:`convnp.shard`): BatchNorm adds its
per-channel sums over the shards with an all-reduce among the threads, so it normalises with the whole batch's
statistics; Dropout draws the whole batch's mask in every replica and keeps its own rows. Before each step every
replica copies the first one's running statistics and Generator states. A model with a layer that declares itself
not shardable trains unsplit. Inference splits any model: it reads the first replica's running statistics.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from convnp._blas import set_blas_threads
from convnp._malloc import keep_freed_memory
from convnp.losses import SoftmaxCrossEntropy
from convnp.shard import Shard, ThreadAllreduce

_default_threads: int | None = None


def set_num_threads(n: int | None) -> None:
    """Set how many threads training and inference use by default; ``None`` restores the default rule."""
    global _default_threads
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"set_num_threads: expected a positive integer or None, got {n!r}")
    _default_threads = n


def get_num_threads() -> int:
    """The default thread count: :func:`set_num_threads`'s, else ``$CONVNP_NUM_THREADS``, else every core."""
    if _default_threads is not None:
        return _default_threads
    env = os.environ.get("CONVNP_NUM_THREADS", "")
    if env.strip():
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"CONVNP_NUM_THREADS must be a positive integer, got {env!r}")
        return value
    return os.cpu_count() or 1


#: Floating-point work of one training step (forward and backward, see :func:`convnp.flops.model_flops`) that a
#: thread needs before splitting a batch pays. Each shard also costs a fixed share of Python and NumPy call
#: overhead, which holds the GIL: the notebook net at batch 64 (20 MFLOP per step) trained an epoch in 4.0 s on one
#: thread and 4.5 s on two; at batch 128 (39 MFLOP), 4.0 s and 3.2 s.
MIN_FLOPS_PER_THREAD = 15e6
#: The same for worker processes (:mod:`convnp.processes`), which do not share a GIL. Epoch seconds of the
#: notebook net on one core against two processes: batch 64 (20 MFLOP per step), 3.4-3.8 against 2.6-2.8; batch 32
#: (10 MFLOP), 2.9-4.2 against 3.5.
MIN_FLOPS_PER_PROCESS = 8e6

#: How a training batch is split: ``"threads"`` (:class:`DataParallel`), ``"processes"``
#: (:class:`convnp.processes.ProcessDataParallel`, the same results bit for bit), or ``"auto"``: processes where
#: they can be forked (Linux), else threads.
BACKENDS = ("auto", "threads", "processes")


def resolve_backend(backend: str, n: int = 2) -> str:
    """``"threads"`` or ``"processes"``: what ``backend`` (one of :data:`BACKENDS`) means for ``n`` workers here.

    One worker is always ``"threads"``: nothing is forked to train unsplit.
    """
    from convnp.processes import available  # here: convnp.processes builds on this module

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if n == 1 or backend == "threads":
        return "threads"
    if not available():
        if backend == "processes":
            raise RuntimeError("backend 'processes' needs os.fork on Linux; use backend 'threads' here")
        return "threads"
    return "processes"


def threads_for(model, batch_size: int, backend: str = "threads") -> int:
    """The worker count training uses when none is given: :func:`get_num_threads`, but when that is only the
    "every core" default, no more workers than give each at least :data:`MIN_FLOPS_PER_THREAD` of work (or
    :data:`MIN_FLOPS_PER_PROCESS`, when ``backend`` comes to processes).

    An explicit :func:`set_num_threads` or ``$CONVNP_NUM_THREADS`` is taken as it is.
    """
    n = get_num_threads()
    if _default_threads is not None or os.environ.get("CONVNP_NUM_THREADS", "").strip() or n == 1:
        return n
    from convnp.flops import model_flops  # here: flops imports the layers, which import nothing of this module

    try:
        work = model_flops(model)["train"] * batch_size
    except (TypeError, ValueError):  # no input_shape to count from: every core
        return n
    per_worker = MIN_FLOPS_PER_PROCESS if resolve_backend(backend, n) == "processes" else MIN_FLOPS_PER_THREAD
    return max(1, min(n, int(work // per_worker)))


def data_parallel(model, n: int, backend: str = "auto", label_smoothing: float = 0.0):
    """A :class:`DataParallel` or :class:`~convnp.processes.ProcessDataParallel` of ``n`` workers, as
    :func:`resolve_backend` decides."""
    if resolve_backend(backend, n) == "processes":
        from convnp.processes import ProcessDataParallel

        return ProcessDataParallel(model, n, label_smoothing)
    return DataParallel(model, n, label_smoothing)


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
        self.replicas = [model] + [model.replica() for _ in range(n_replicas - 1)]
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
        previous = set_blas_threads(1)
        try:
            if self.pool is None or len(jobs) == 1:
                return [fn(*job) for job in jobs]
            futures = [self.pool.submit(fn, *job) for job in jobs]
            wait(futures)
        finally:
            if previous is not None:
                set_blas_threads(previous)
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
        agree = split and self.model.collective
        for i, (start, stop) in enumerate(bounds):
            if i > 0:
                self.replicas[i].sync_from(self.model)  # running statistics, dropout Generators
            self.replicas[i].set_shard(Shard(start, stop, n, allreduce.for_party(i)) if split else None)

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
                replica.set_shard(None)  # a later plain forward must not wait for shards that are gone
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
                self.model.replica() for _ in range(self.n_threads - len(self.replicas))
            ]
        replicas = self._inference_replicas
        bounds = shard_bounds(len(x), len(replicas))
        for replica in replicas[1:]:
            replica.share_state_with(self.model)  # inference reads the first replica's running statistics
        parts = self._map(lambda i, a, b: replicas[i].forward(x[a:b]), [(i, a, b) for i, (a, b) in enumerate(bounds)])
        return np.concatenate(parts)
