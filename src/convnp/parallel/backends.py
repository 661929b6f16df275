"""Which workers split a training batch, and how many: threads or forked processes, and the default count.

``"threads"`` is :class:`~convnp.parallel.threads.DataParallel`; ``"processes"`` is
:class:`~convnp.parallel.processes.ProcessDataParallel`, which gives the same results bit for bit and, having an
interpreter per process, is faster on small networks. Without a count given, training uses every core but no more
workers than each get enough floating-point work per step to outweigh a worker's fixed costs (the measurements
behind the thresholds are in docs/parallel.md).
"""

from __future__ import annotations

from convnp.flops import model_flops
from convnp.parallel import processes
from convnp.parallel.threads import DataParallel, configured_num_threads, get_num_threads

#: Floating-point work of one training step (forward and backward, see :func:`convnp.flops.model_flops`) that a
#: thread needs before splitting a batch pays: each shard also costs a fixed share of Python and NumPy call
#: overhead, which holds the GIL.
MIN_FLOPS_PER_THREAD = 15e6
#: The same for worker processes (:mod:`convnp.parallel.processes`), which do not share a GIL.
MIN_FLOPS_PER_PROCESS = 8e6

#: How a training batch is split: ``"threads"`` (:class:`~convnp.parallel.threads.DataParallel`), ``"processes"``
#: (:class:`~convnp.parallel.processes.ProcessDataParallel`, the same results bit for bit), or ``"auto"``:
#: processes where they can be forked (Linux), else threads.
BACKENDS = ("auto", "threads", "processes")


def resolve_backend(backend: str, n: int = 2) -> str:
    """``"threads"`` or ``"processes"``: what ``backend`` (one of :data:`BACKENDS`) means for ``n`` workers here.

    One worker is always ``"threads"``: nothing is forked to train unsplit.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if n == 1 or backend == "threads":
        return "threads"
    if not processes.available():
        if backend == "processes":
            raise RuntimeError("backend 'processes' needs os.fork on Linux; use backend 'threads' here")
        return "threads"
    return "processes"


def threads_for(model, batch_size: int, backend: str = "threads") -> int:
    """The worker count training uses when none is given: :func:`get_num_threads`, but when that is only the
    "every core" default, no more workers than give each at least :data:`MIN_FLOPS_PER_THREAD` of work (or
    :data:`MIN_FLOPS_PER_PROCESS`, when ``backend`` comes to processes).

    An explicit :func:`~convnp.parallel.set_num_threads` or ``$CONVNP_NUM_THREADS`` is taken as it is.
    """
    n = get_num_threads()
    if configured_num_threads() is not None or n == 1:
        return n
    try:
        work = model_flops(model)["train"] * batch_size
    except (TypeError, ValueError):  # no input_shape to count from: every core
        return n
    per_worker = MIN_FLOPS_PER_PROCESS if resolve_backend(backend, n) == "processes" else MIN_FLOPS_PER_THREAD
    return max(1, min(n, int(work // per_worker)))


def data_parallel(model, n: int, backend: str = "auto", label_smoothing: float = 0.0):
    """A :class:`~convnp.parallel.threads.DataParallel` or :class:`~convnp.parallel.processes.ProcessDataParallel`
    of ``n`` workers, as :func:`resolve_backend` decides."""
    if resolve_backend(backend, n) == "processes":
        return processes.ProcessDataParallel(model, n, label_smoothing)
    return DataParallel(model, n, label_smoothing)
