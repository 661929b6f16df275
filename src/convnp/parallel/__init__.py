"""Every way convnp uses several cores or machines: one training batch split across workers.

A newcomer's map, one module per concern, imported in this order (each only from the ones above it):

- :mod:`~convnp.parallel.blas`: OpenBLAS's thread count (one per worker); :mod:`~convnp.parallel.malloc`: glibc
  keeps freed memory for the next step;
- :mod:`~convnp.parallel.shard`: a shard of a batch (:class:`Shard`), the step one shard runs (:func:`shard_step`),
  how shards sum across the batch (the all-reduce BatchNorm needs);
- :mod:`~convnp.parallel.replicate`: a model's twin for another thread (:func:`replicate`), sharing its weights;
- :mod:`~convnp.parallel.threads`: :class:`DataParallel`, shards in threads, and the default worker count
  (:func:`set_num_threads`, :func:`get_num_threads`);
- :mod:`~convnp.parallel.processes`: :class:`ProcessDataParallel`, shards in forked worker processes, the same bits;
- :mod:`~convnp.parallel.backends`: threads or processes, and how many (:func:`data_parallel`, :func:`threads_for`);
- :mod:`~convnp.parallel.mpi`: :class:`DistributedDataParallel`, shards in the processes of an MPI job.

The models know none of this: a layer says only whether it can train on a shard and whether it sums across shards
(:mod:`convnp.layers.base`). docs/parallel.md explains the arithmetic and the measurements behind the defaults.
"""

from convnp.parallel.blas import get_blas_threads, set_blas_threads
from convnp.parallel.malloc import keep_freed_memory
from convnp.parallel.shard import Shard, ThreadAllreduce, shard_bounds, shard_step
from convnp.parallel.replicate import replicate, replicate_layer
from convnp.parallel.threads import DataParallel, get_num_threads, set_num_threads
from convnp.parallel.processes import ProcessDataParallel, WorkerError
from convnp.parallel.backends import (
    BACKENDS,
    MIN_FLOPS_PER_PROCESS,
    MIN_FLOPS_PER_THREAD,
    data_parallel,
    resolve_backend,
    threads_for,
)
from convnp.parallel.mpi import Distributed, DistributedDataParallel, ReplicasDiverged, RootFailed

__all__ = [
    "BACKENDS",
    "MIN_FLOPS_PER_PROCESS",
    "MIN_FLOPS_PER_THREAD",
    "DataParallel",
    "Distributed",
    "DistributedDataParallel",
    "ProcessDataParallel",
    "ReplicasDiverged",
    "RootFailed",
    "Shard",
    "ThreadAllreduce",
    "WorkerError",
    "data_parallel",
    "get_blas_threads",
    "get_num_threads",
    "keep_freed_memory",
    "replicate",
    "replicate_layer",
    "resolve_backend",
    "set_blas_threads",
    "set_num_threads",
    "shard_bounds",
    "shard_step",
    "threads_for",
]
