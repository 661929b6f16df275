"""Training across processes, on one machine or many, with MPI: synchronous data-parallel SGD.

Every process (an MPI *rank*) holds the whole model and the whole training set and runs the same training loop.
Each step takes the *global* batch, identical on every process (the batch order comes from the same seeded
Generator), and process ``r`` of ``N`` runs forward and backward on rows ``shard_bounds(B, N)[r]`` of it. One
all-reduce then sums the gradients over the processes, so every process applies the same update and keeps the same
weights. This is the scheme of Horovod (Sergeev & Del Balso 2018, arXiv:1802.05799) and PyTorch's
DistributedDataParallel (Li et al. 2020, arXiv:2006.15704).

Semantics, the same as one process with the same settings:

- ``batch_size`` is the *global* batch; each process computes about ``batch_size / N`` samples of it. The loss is
  the mean over the global batch, so each shard's output gradient is scaled by ``shard size / batch size`` and the
  summed gradient is the global batch's mean gradient: the learning rate needs no rescaling for ``N``.
- Shards are contiguous rows, split at ``round(k * B / N)``: sizes differ by at most one. An epoch's last batch
  (the remainder) is split the same way; one smaller than ``N`` is computed whole by every process instead (the
  same result, no all-reduce).
- BatchNorm normalises with the whole global batch's statistics and Dropout draws the whole batch's mask
  (:mod:`convnp.parallel.shard`), so these layers behave as in one process too.
- Results equal one process's up to float rounding: the sums are grouped differently (two partial matrix
  products plus an all-reduce instead of one product). At a fixed ``N`` they are deterministic.
- One thread per process: the processes are the parallelism.
- Augmentation, the optimizer update and the validation and test passes are done in full by every process: they
  keep the processes identical without sending weights, and cost a few percent of a step.

Process 0 reads the data first (:meth:`Distributed.load_dataset`). A folder of images that every process sees is then
opened by each from its memory-mapped cache; other data are sent by process 0 to the others, so only its machine
needs the files. Process 0 alone writes the run folder. The other processes run the same code on a private scratch copy of the
folder (:meth:`Distributed.local_run_dir`), so every process takes exactly the same path through the loop.

mpi4py is imported when a :class:`Distributed` is made, never by ``import convnp``; install it with
``pip install 'convnp[mpi]'``. Nothing here pickles: arrays travel as raw buffers, everything else as JSON. What
``convnp train --distributed`` adds around a run (one quiet process per rank but 0, one error line, ``MPI_Abort``)
is the command line's: :mod:`convnp.cli.distributed`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from convnp.losses import SoftmaxCrossEntropy
from convnp.parallel.blas import set_blas_threads
from convnp.parallel.malloc import keep_freed_memory
from convnp.parallel.shard import Shard, set_shard, shard_bounds

# Waiting for a collective: first this many quick polls (a fast transfer costs no sleep), then a poll per sleep of
# POLL_SLEEP_S. MPI's blocking calls spin instead, taking a core from the very process being waited for when the
# machine has other work (docs/parallel.md: what sleeping gained).
QUICK_POLLS, POLL_SLEEP_S = 100, 1e-4


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise RuntimeError(
            "distributed training needs mpi4py and an MPI library: pip install 'convnp[mpi]' "
            f"(mpi4py and Open MPI's wheels); importing mpi4py failed: {err}"
        ) from None
    return MPI


class RootFailed(RuntimeError):
    """Raised on the other processes when process 0 failed at something they all wait for (reading the data)."""


class ReplicasDiverged(RuntimeError):
    """The processes' weights or state are no longer bitwise identical."""


class Distributed:
    """The processes of an MPI job, as convnp's training uses them.

    Parameters
    ----------
    comm : mpi4py communicator, optional
        Default ``MPI.COMM_WORLD``: every process ``mpirun`` started.

    Every method below except :meth:`close` and :meth:`abort` is a collective: all processes must call it, in the
    same order.
    """

    def __init__(self, comm=None):
        self.MPI = _mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self._scratch: list[Path] = []

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return f"Distributed(rank={self.rank}, size={self.size})"

    # --- collectives on arrays and JSON -------------------------------------------------------------------------

    def allreduce(self, a: np.ndarray) -> np.ndarray:
        """The element-wise sum of ``a`` over the processes, as a new array (the ``allreduce`` of :class:`Shard`)."""
        a = np.ascontiguousarray(a)
        out = np.empty_like(a)
        self._wait(self.comm.Iallreduce(a, out, op=self.MPI.SUM))
        return out

    def allreduce_in_place(self, buffer: np.ndarray) -> None:
        """Replace the contiguous ``buffer`` by its element-wise sum over the processes."""
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM))

    @staticmethod
    def _wait(request) -> None:
        polls = 0
        while not request.Test():
            polls += 1
            if polls > QUICK_POLLS:
                time.sleep(POLL_SLEEP_S)

    def broadcast_bytes(self, data: bytes | None) -> bytes:
        """Process 0's ``data`` on every process (the others pass None)."""
        n = np.array([len(data) if self.is_root else 0], dtype=np.int64)
        self.comm.Bcast(n, root=0)
        buf = np.frombuffer(data, dtype=np.uint8).copy() if self.is_root else np.empty(int(n[0]), dtype=np.uint8)
        self.comm.Bcast([buf, self.MPI.BYTE], root=0)
        return buf.tobytes()

    def broadcast_json(self, obj):
        """Process 0's JSON-serialisable ``obj`` on every process."""
        text = json.dumps(obj).encode() if self.is_root else None
        return json.loads(self.broadcast_bytes(text))

    def broadcast_array(self, a: np.ndarray | None) -> np.ndarray | None:
        """Process 0's array (or None) on every process, as raw bytes plus its dtype and shape."""
        spec = self.broadcast_json(None if a is None else [np.asarray(a).dtype.str, list(np.shape(a))])
        if spec is None:
            return None
        if self.is_root:
            out = np.ascontiguousarray(a)
        else:
            out = np.empty(spec[1], dtype=np.dtype(spec[0]))
        if out.size:
            self.comm.Bcast([out.reshape(-1).view(np.uint8), self.MPI.BYTE], root=0)
        return out

    def _from_root(self, work):
        """Run ``work()`` on process 0 and tell everyone whether it failed; on failure every process raises.

        Without this, a failure on process 0 would leave the others waiting forever for what it never sends.
        """
        error = result = None
        if self.is_root:
            try:
                result = work()
            except Exception as err:  # re-raised below, after the others have been told
                error = err
        # The others wait here sleeping, not spinning in a blocking broadcast: process 0 may be decoding a folder on
        # every core.
        self._wait(self.comm.Ibarrier())
        message = self.broadcast_json(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        if message is not None:
            raise RootFailed(f"process 0 failed: {message}")
        return result

    # --- what a training run needs ------------------------------------------------------------------------------

    def load_dataset(self, spec: str = "mnist", *, mnist_dir=None, progress=None, **options):
        """:func:`convnp.data.datasets.load_dataset` for every process (``options``: its ``image_size``,
        ``channels``, ``test_split``).

        Process 0 loads first (decoding a folder into its cache, ``progress`` showing it). A folder that every
        process can see is then opened by each process itself, from the cache process 0 filled (or decoded again
        where the processes share no file system), so no process receives gigabytes from another; the data set's
        name, classes, shapes and labels are checked to be process 0's. Anything else (MNIST, an ``.npz``, a folder
        only process 0 sees) is read by process 0 alone and its arrays sent to the others.
        """
        from convnp.data.datasets import Dataset, load_dataset

        data = self._from_root(lambda: load_dataset(spec, mnist_dir=mnist_dir, progress=progress, **options))
        everyone_sees = self.allreduce(np.array([0 if Path(spec).is_dir() else 1], dtype=np.int64))[0] == 0
        if everyone_sees:
            loaded = data
            data = self._each_loads(lambda: loaded if self.is_root else load_dataset(spec, mnist_dir=mnist_dir,
                                                                                     **options))
            self._check_same_data(data)
            return data
        name = self.broadcast_json(data.name if self.is_root else None)
        classes = self.broadcast_json(data.classes if self.is_root else None)  # names unused labels too
        arrays = {k: self.broadcast_array(getattr(data, k) if self.is_root else None)
                  for k in ("x_train", "y_train", "x_test", "y_test")}
        return data if self.is_root else Dataset(name, **arrays, classes=classes)

    def _each_loads(self, work):
        """``work()`` on every process; if it fails anywhere, every process raises (one message per failure)."""
        error = None
        try:
            result = work()
        except Exception as err:  # re-raised below, after the others have been told
            error, result = err, None
        failed = self.allreduce(np.array([error is not None], dtype=np.int64))[0]
        if error is not None:
            raise error
        if failed:
            raise RootFailed(f"{int(failed)} other process(es) failed to load the data")
        return result

    def _check_same_data(self, data) -> None:
        """Refuse to train when this process's data set is not process 0's (a folder that differs between machines)."""
        def summary(d) -> str:
            splits = [(None if x is None else [list(x.shape), hashlib.sha256(np.ascontiguousarray(y)).hexdigest()])
                      for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test))]
            return json.dumps([d.classes, splits])

        mine = summary(data)
        root = self.broadcast_json(mine if self.is_root else None)
        differs = self.allreduce(np.array([mine != root], dtype=np.int64))[0]
        if differs:
            raise RuntimeError(f"{data.name}: {int(differs)} process(es) read another data set than process 0's (other "
                               "classes, image shapes or labels); give every process the same folder")

    def local_run_dir(self, run_dir, resume: bool = False) -> Path:
        """The run folder this process's :func:`~convnp.train.run.train_run` uses.

        Process 0: ``run_dir`` itself. The others: a private scratch folder (removed by :meth:`close`), holding
        copies of process 0's ``config.json`` and ``last.npz`` when resuming, so they load the same checkpoint
        without sharing a file system, and whatever they write goes nowhere.
        """
        run_dir = Path(run_dir)

        def read():
            return {name: (run_dir / name).read_bytes() for name in ("config.json", "last.npz")
                    if resume and (run_dir / name).is_file()}

        files = self._from_root(read)
        names = self.broadcast_json(sorted(files) if self.is_root else None)
        contents = {name: self.broadcast_bytes(files.get(name) if self.is_root else None) for name in names}
        if self.is_root:
            return run_dir
        scratch = Path(tempfile.mkdtemp(prefix=f"convnp-rank{self.rank}-"))
        self._scratch.append(scratch)
        for name, data in contents.items():
            (scratch / name).write_bytes(data)
        return scratch

    def data_parallel(self, model, label_smoothing: float = 0.0, **kwargs) -> "DistributedDataParallel":
        return DistributedDataParallel(model, self, label_smoothing=label_smoothing, **kwargs)

    def broadcast_model(self, model) -> None:
        """Give every process process 0's weights, running statistics and layer Generator states, in place."""
        for layer in model.layers:
            for store in (layer.params, layer.state):
                for key in store:
                    if not store[key].flags.c_contiguous:
                        store[key] = np.ascontiguousarray(store[key])
                    self.comm.Bcast(store[key], root=0)
        model.set_rng_states(self.broadcast_json(model.rng_states() if self.is_root else None))

    def check_same_model(self, model, when: str = "") -> None:
        """Raise :class:`ReplicasDiverged` on every process unless all hold bitwise-identical models.

        Compares a SHA-256 of every parameter, state array and layer Generator state, gathered from all processes.
        """
        mine = np.frombuffer(model_fingerprint(model), dtype=np.uint8)
        every = np.empty((self.size, mine.size), dtype=np.uint8)
        self.comm.Allgather(mine, every)
        differ = [r for r in range(1, self.size) if not np.array_equal(every[r], every[0])]
        if differ:
            raise ReplicasDiverged(
                f"the processes' models are no longer identical{' ' + when if when else ''}: process(es) "
                f"{differ} differ from process 0 (a process computed something else; check that every process runs "
                "the same convnp, NumPy and BLAS)"
            )

    # --- ending -------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove this process's scratch folders (not a collective)."""
        for folder in self._scratch:
            shutil.rmtree(folder, ignore_errors=True)
        self._scratch.clear()

    def abort(self, code: int = 1) -> None:
        """End every process of the job now (``MPI_Abort``); does not return."""
        self.close()
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


def model_fingerprint(model) -> bytes:
    """SHA-256 of a model's parameters, state arrays and layer Generator states, in layer order."""
    h = hashlib.sha256()
    for prefix, layer in model.named_layers():
        for store in (layer.params, layer.state):
            for key, value in store.items():
                h.update(f"{prefix}.{key}".encode())
                h.update(np.ascontiguousarray(value).tobytes())
    h.update(json.dumps(model.rng_states(), sort_keys=True).encode())
    return h.digest()


class DistributedDataParallel:
    """Runs a model's training steps across the processes of an MPI job; the interface of
    :class:`convnp.parallel.threads.DataParallel`, so :class:`convnp.train.Trainer` takes either (``parallel=``).

    Parameters
    ----------
    model : Sequential
        This process's copy. It is overwritten with process 0's weights, state and layer Generator states when
        this object is made, as PyTorch's DDP does, so every process starts from the same model.
    distributed : Distributed, optional
        Default ``Distributed()`` (every process of the job).
    label_smoothing : float
        For the :class:`~convnp.losses.SoftmaxCrossEntropy` of the training loss.
    check_every : int
        Check that every process holds the same model (:meth:`Distributed.check_same_model`) before step 0 and
        every ``check_every`` steps after, and in :meth:`close`; 0 checks only in :meth:`close`.

    :meth:`train_step` takes the *global* batch, the same on every process, and leaves its mean gradient in the
    model's ``grads`` on every process. Each process runs BLAS in one thread.
    """

    def __init__(self, model, distributed: Distributed | None = None, *, label_smoothing: float = 0.0,
                 check_every: int = 100):
        self.dist = distributed if distributed is not None else Distributed()
        if not isinstance(check_every, int) or isinstance(check_every, bool) or check_every < 0:
            raise ValueError(f"DistributedDataParallel: check_every must be an integer >= 0, got {check_every!r}")
        if self.dist.size > 1 and not model.shardable:
            raise ValueError(
                "DistributedDataParallel: this model has a layer that cannot train on a shard of the batch "
                f"(shardable=False: {[type(l).__name__ for l in model.layers if not l.shardable]}); train it in "
                "one process"
            )
        keep_freed_memory()
        set_blas_threads(1)  # one BLAS thread per process: the processes are the parallelism
        self.model, self.check_every = model, check_every
        self.loss_fn = SoftmaxCrossEntropy(label_smoothing)
        self.steps = 0
        self.dist.broadcast_model(model)
        n_params = sum(g.size for g in model.gradients().values())
        self._flat = np.empty(n_params, dtype=model.dtype)  # every gradient, packed for one all-reduce

    def train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int, bool]:
        """Forward and backward on this process's rows of the global batch ``(x, y)``; the gradients summed over
        the processes are left in the model's ``grads``.

        Returns the global batch's mean loss, its number of correct predictions, and whether every logit (on
        every process) was finite; the same on every process.
        """
        if self.check_every and self.steps % self.check_every == 0:
            self.dist.check_same_model(self.model, f"before step {self.steps + 1}")
        self.steps += 1
        n, size = len(y), self.dist.size
        bounds = shard_bounds(n, size)
        # A batch smaller than the number of processes (only an epoch's last can be) is computed whole everywhere.
        split = size > 1 and len(bounds) == size
        start, stop = bounds[self.dist.rank] if split else (0, n)
        model, loss_fn = self.model, self.loss_fn
        set_shard(model, Shard(start, stop, n, self.dist.allreduce) if split else None)
        try:
            logits = model.forward(x[start:stop], training=True)
            # (non-finite, this shard's share of the mean loss, correct): one all-reduce, so all agree on stopping
            stats = np.zeros(3)
            if np.isfinite(logits).all():
                loss = loss_fn.forward(logits, y[start:stop])
                stats[1] = loss * (stop - start) / n  # DataParallel's expression: one process gives its bits
                stats[2] = np.sum(logits.argmax(axis=1) == y[start:stop])
            else:
                stats[0] = 1
            if split:
                stats = self.dist.allreduce(stats)
            if stats[0]:  # every process stops here, or none: the backward's all-reduces need them all
                return float("nan"), 0, False
            dlogits = loss_fn.backward()
            if split:
                dlogits *= np.asarray((stop - start) / n, dtype=dlogits.dtype)
            model.backward(dlogits, input_grad=False)
        finally:
            set_shard(model, None)  # a later plain forward (validation) must not wait for other processes
        if split:
            self._sum_gradients()
        return float(stats[1]), int(stats[2]), True

    def _sum_gradients(self) -> None:
        """Replace every gradient by its sum over the processes: one all-reduce of all of them packed together.

        The packing order (layers in order, each layer's parameters in its own order) is the same everywhere.
        """
        grads = list(self.model.gradients().values())
        flat, offset = self._flat, 0
        for g in grads:
            flat[offset : offset + g.size] = g.reshape(-1)
            offset += g.size
        self.dist.allreduce_in_place(flat)
        offset = 0
        for g in grads:
            g[...] = flat[offset : offset + g.size].reshape(g.shape)
            offset += g.size

    def close(self) -> None:
        """Check once more that every process holds the same model (a collective)."""
        self.dist.check_same_model(self.model, f"after step {self.steps}")
