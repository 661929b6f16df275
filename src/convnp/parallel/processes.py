"""Using several cores with processes: each training batch split across forked worker processes.

:class:`~convnp.parallel.threads.DataParallel` splits a batch across threads. Threads share one interpreter, and
every Python statement and every short NumPy call of a shard holds its lock (the GIL); on small networks that is
much of a step (docs/parallel.md has the measurements). Worker processes each have their own interpreter, so the
second core works in full.

A step with ``P`` processes (the caller, and ``P - 1`` workers forked at the first split step):

1. The caller copies every parameter and state array into one block of shared memory, made before the fork so both
   sides map it. Workers read the parameters there in place, and take private copies of the state arrays, which
   BatchNorm updates in place.
2. It writes each worker's rows of the batch into a shared input block (rows that do not fit go through the pipe)
   and sends it a short message through a pipe: which rows, and the layer Generators' states (Dropout's).
3. Every process runs forward and backward on its rows exactly as ``DataParallel``'s thread of the same index would
   (:func:`convnp.parallel.shard.shard_step`). BatchNorm's all-reduce goes through the caller, which adds the parts
   in shard order, as :class:`~convnp.parallel.shard.ThreadAllreduce` does.
4. Each worker writes its gradients into a shared block of its own; the caller adds them to its own in shard order.

So a step gives bit for bit what ``DataParallel`` gives with as many threads; the tests check it.

Workers ignore SIGINT. Ctrl-C reaches the whole process group, and the training loop's own handler stops the run
between steps. A worker that dies is noticed at its pipe, when a message to it cannot be written or one from it ends
early, and reported with how it ended (its exit status, waited for, never guessed). After any failure during a step,
the workers are ended, and the next step forks fresh ones. A worker announces the fault point ``worker step K``
(:mod:`convnp.fault_points`) when its K-th step arrives, so tests can kill it there.

Needs ``os.fork``: Linux (:func:`available`). Nothing is pickled: messages are JSON headers and raw array bytes.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import select
import signal
import sys
import time
import traceback
import weakref
from multiprocessing.connection import Pipe

import numpy as np

from convnp import fault_points
from convnp.losses import SoftmaxCrossEntropy
from convnp.parallel.blas import blas_threads, set_blas_threads
from convnp.parallel.malloc import keep_freed_memory
from convnp.parallel.shard import Shard, collective, set_shard, shard_bounds, shard_step
from convnp.parallel.threads import DataParallel

#: Seconds :meth:`ProcessDataParallel.close` waits for a worker to exit before killing it; also how long a worker
#: whose pipe has closed is given to finish exiting before it is reported as still running. Only a worker that is
#: stuck waits this long: a worker's exit is an event, waited for as one (:func:`_wait_child`).
QUIT_WAIT_S = 5.0

#: Seconds a process polls its pipe before it blocks on it. Waking a process blocked on a pipe is slow on virtual
#: machines, and happens several times a step; polling (yielding the core to any other runnable process between
#: polls) catches the next message awake (docs/parallel.md has the measurements).
POLL_S = 1e-3


def _wait_readable(conn) -> None:
    """Return when ``conn`` has data, after at most :data:`POLL_S` of polling (the read that follows may block)."""
    poller = select.poll()  # not conn.poll(), which builds a selector on every call
    poller.register(conn.fileno(), select.POLLIN)
    deadline = time.perf_counter() + POLL_S
    while not poller.poll(0) and time.perf_counter() < deadline:
        os.sched_yield()


def _wait_child(pid: int, timeout: float | None) -> int | None:
    """Reap the child process ``pid`` once it has exited and return its wait status; None if it is still running
    after ``timeout`` seconds (``None``: wait as long as it takes).

    Raises ``ChildProcessError`` if it is no child of this process (or was reaped already). Waits on the process's
    exit itself (a pidfd, Linux 5.3+), falling back to polling ``waitpid`` where there is none.
    """
    if timeout is not None:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no pidfd here, or reaped already (the waitpid below says so)
            deadline = time.monotonic() + timeout
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return status
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.005)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)  # readable once the process has exited
            if not poller.poll(math.ceil(max(timeout, 0) * 1000)):
                return None
        finally:
            os.close(fd)
    return os.waitpid(pid, 0)[1]


def available() -> bool:
    """Whether worker processes can be used here: ``os.fork`` on Linux (fork is unsafe with macOS's libraries)."""
    return hasattr(os, "fork") and sys.platform.startswith("linux")


class WorkerError(RuntimeError):
    """A worker process failed during a training step, or ended unexpectedly.

    ``worker_traceback`` holds the worker's own traceback when it failed with an exception (else None).
    """

    def __init__(self, message: str, worker_traceback: str | None = None):
        super().__init__(message)
        self.worker_traceback = worker_traceback


class _SharedArrays:
    """Arrays of the given shapes and dtypes in one anonymous shared memory map.

    The map is ``MAP_SHARED``: a process forked after it is made sees the same memory, so writes on either side are
    seen by the other.
    """

    def __init__(self, specs: list[tuple[tuple, np.dtype]]):
        offsets, size = [], 0
        for shape, dtype in specs:
            offsets.append(size)
            size += -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // 64) * 64  # 64-byte aligned starts
        self._map = mmap.mmap(-1, max(size, 1))
        self.arrays = [
            np.frombuffer(self._map, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
            for (shape, dtype), offset in zip(specs, offsets)
        ]


def _stores(model) -> list[tuple[dict, str, bool]]:
    """``(store, key, is_parameter)`` for every parameter and state array of ``model``, in layer order."""
    return [(store, key, store is layer.params) for layer in model.layers
            for store in (layer.params, layer.state) for key in store]


def _layout(stores) -> tuple:
    """What the shared blocks were laid out for: each of :func:`_stores`' arrays' kind, shape and dtype (a changed
    model needs new workers)."""
    return tuple((is_param, store[key].shape, store[key].dtype.str) for store, key, is_param in stores)


# --- messages: a JSON header, then the raw bytes of the arrays it describes ------------------------------------------


def _send(conn, header: dict, *arrays: np.ndarray) -> None:
    header = dict(header, arrays=[[a.dtype.str, list(a.shape)] for a in arrays])
    conn.send_bytes(json.dumps(header).encode())
    for a in arrays:
        conn.send_bytes(np.ascontiguousarray(a))


def _receive(conn, buffers: list) -> tuple[dict, list[np.ndarray]]:
    """A header and its arrays; ``buffers`` holds reusable receive buffers, grown as needed (the arrays view
    them, so they are valid until the next call)."""
    _wait_readable(conn)
    header = json.loads(conn.recv_bytes())
    arrays = []
    for i, (dtype, shape) in enumerate(header.pop("arrays")):
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if len(buffers) <= i:
            buffers.append(bytearray(0))
        if len(buffers[i]) < max(nbytes, 1):
            buffers[i] = bytearray(max(nbytes, 1))
        conn.recv_bytes_into(buffers[i])
        arrays.append(np.frombuffer(buffers[i], dtype=dtype, count=int(np.prod(shape))).reshape(shape))
    return header, arrays


# --- the worker side -------------------------------------------------------------------------------------------------


def _worker_main(conn, model, label_smoothing: float, shared: _SharedArrays, grads: _SharedArrays,
                 inputs: _SharedArrays) -> None:
    """A worker's loop: run the steps the caller sends until it says quit or its pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle, between steps
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    set_blas_threads(1)  # the processes are the parallelism
    loss_fn = SoftmaxCrossEntropy(label_smoothing)
    stores = _stores(model)
    names = list(model.parameters())  # the gradient block's order
    try:
        _serve(conn, model, loss_fn, stores, names, shared, grads, inputs)
    except (EOFError, ConnectionError):  # the caller is gone (killed, say): nothing to report to, nobody to wait for
        return


def _serve(conn, model, loss_fn, stores, names, shared, grads, inputs) -> None:
    """Answer the caller's messages until it says quit. Announces ``worker step K`` (:mod:`convnp.fault_points`)
    when the K-th step since this worker was forked has arrived, before any of it is done."""
    buffers: list = []
    reduce_buffers: list = []
    announce = fault_points.armed()  # tests only: name the "worker step K" points
    steps = 0

    def allreduce(a: np.ndarray) -> np.ndarray:
        _send(conn, {"op": "reduce"}, a)
        header, (total,) = _receive(conn, reduce_buffers)
        return total.copy()

    while True:
        header, arrays = _receive(conn, buffers)
        if header["op"] == "quit":
            return
        if header["op"] == "predict":
            _predict(conn, model, stores, shared, arrays or [inputs.arrays[0][: header["rows"]]])
            continue
        steps += 1
        if announce:
            fault_points.reached(f"worker step {steps}")
        try:
            # The rows come in the shared input block when they fit there, else through the pipe.
            x, y = arrays or (a[: header["rows"]] for a in inputs.arrays)
            _load_shared(stores, shared)
            if header["rng"]:
                model.set_rng_states(header["rng"])
            start, stop, n = header["start"], header["stop"], header["total"]
            set_shard(model, Shard(start, stop, n, allreduce))
            try:
                loss, correct, finite = shard_step(model, loss_fn, x, y, n, allreduce if header["agree"] else None)
            finally:
                set_shard(model, None)
            if finite:
                computed = model.gradients()
                for name, target in zip(names, grads.arrays):  # by name: the block's order
                    target[...] = computed[name]
            _send(conn, {"op": "done", "loss": loss, "correct": correct, "finite": finite})
        except Exception as err:  # reported by the caller, which then ends every worker
            _send(conn, {"op": "error", "message": f"{type(err).__name__}: {err}",
                         "traceback": traceback.format_exc()})


def _load_shared(stores, shared: _SharedArrays) -> None:
    """Point the worker's model at the caller's arrays in the shared block: parameters read in place; state (updated
    in place by BatchNorm) copied, so each worker has its own."""
    for (store, key, is_param), array in zip(stores, shared.arrays):
        store[key] = array if is_param else array.copy()


def _predict(conn, model, stores, shared, arrays) -> None:
    """Answer a ``predict`` message: the logits of ``arrays[0]`` in inference mode, with the caller's parameters and
    state as the shared block holds them."""
    try:
        _load_shared(stores, shared)
        _send(conn, {"op": "logits"}, model.forward(arrays[0], training=False))
    except Exception as err:
        _send(conn, {"op": "error", "message": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})


class _Worker:
    """The caller's handle on one worker process: its pid, its pipe and its gradient block."""

    def __init__(self, pid: int, conn, grads: _SharedArrays, inputs: _SharedArrays):
        self.pid, self.conn, self.grads, self.inputs = pid, conn, grads, inputs
        self.buffers: list = []
        self.reaped = False  # its exit status taken: the pid may be another process's now, never to be signalled

    def send(self, header: dict, *arrays: np.ndarray) -> None:
        """Send the worker a message; a worker that is gone (its end of the pipe closed) raises
        :class:`WorkerError`."""
        try:
            _send(self.conn, header, *arrays)
        except OSError:  # BrokenPipeError, ConnectionResetError: nobody reads at the other end any more
            raise self._ended() from None

    def send_rows(self, header: dict, x: np.ndarray, y: np.ndarray) -> None:
        """Send a step: the rows ``x, y`` go in the shared input block if they fit, else through the pipe."""
        block_x, block_y = self.inputs.arrays
        if len(x) <= len(block_x) and x.shape[1:] == block_x.shape[1:] and y.shape[1:] == block_y.shape[1:] \
                and x.dtype == block_x.dtype and y.dtype == block_y.dtype:
            block_x[: len(x)] = x
            block_y[: len(y)] = y
            self.send(dict(header, rows=len(y)))
        else:
            self.send(header, x, y)

    def send_inputs(self, header: dict, x: np.ndarray) -> None:
        """Send an inference request: the rows ``x`` go in the shared input block if they fit, else through the
        pipe."""
        block_x = self.inputs.arrays[0]
        if len(x) <= len(block_x) and x.shape[1:] == block_x.shape[1:] and x.dtype == block_x.dtype:
            block_x[: len(x)] = x
            self.send(dict(header, rows=len(x)))
        else:
            self.send(header, x)

    def receive(self, expect: str) -> tuple[dict, list[np.ndarray]]:
        """The worker's next message, which must be ``expect``; a failure or death of the worker raises
        :class:`WorkerError`."""
        try:
            header, arrays = _receive(self.conn, self.buffers)
        except (EOFError, OSError):  # the pipe ended, or was reset with a message to the worker unread
            raise self._ended() from None
        if header["op"] == "error":
            raise WorkerError(f"training worker process {self.pid} failed: {header['message']}", header["traceback"])
        if header["op"] != expect:  # the shards took different paths: a bug, never to be papered over
            raise WorkerError(f"training worker process {self.pid} sent {header['op']!r}, expected {expect!r}")
        return header, arrays

    def _ended(self) -> WorkerError:
        """The error for a worker whose pipe has closed, naming how it ended.

        Its end of the pipe closes as the process exits (nothing else closes it), so its exit status is waited for,
        not guessed at: the same message whenever the death is noticed. Only a worker still running
        :data:`QUIT_WAIT_S` later (something closed its pipe without ending it) is reported as such.
        """
        try:
            status = _wait_child(self.pid, QUIT_WAIT_S)
        except ChildProcessError:
            how = "its exit status was taken by someone else"
            self.reaped = True
        else:
            self.reaped = status is not None
            if status is None:
                how = "still running, its pipe closed"
            elif os.WIFSIGNALED(status):
                how = f"killed by signal {os.WTERMSIG(status)}"
            else:
                how = f"exit code {os.WEXITSTATUS(status)}"
        return WorkerError(f"training worker process {self.pid} ended unexpectedly ({how})")


def _end_workers(workers: list[_Worker], kill: bool) -> None:
    """Ask each worker to quit (or kill it), then wait for it; kill any that do not exit within QUIT_WAIT_S."""
    running = [w for w in workers if not w.reaped]  # a reaped worker's pid may be another process's by now
    for w in running:
        try:
            if kill:
                os.kill(w.pid, signal.SIGKILL)
            else:
                _send(w.conn, {"op": "quit"})
        except (OSError, ValueError):  # already gone
            pass
    deadline = time.monotonic() + QUIT_WAIT_S
    for w in running:
        try:
            if _wait_child(w.pid, max(deadline - time.monotonic(), 0)) is None:
                os.kill(w.pid, signal.SIGKILL)
                _wait_child(w.pid, None)  # SIGKILL cannot be ignored: now just wait
        except ChildProcessError:  # reaped already
            pass
        w.reaped = True
    for w in workers:
        w.conn.close()


class ProcessDataParallel:
    """Runs a model's training steps on shards of each batch in ``n_processes`` processes: this one and
    ``n_processes - 1`` forked workers. The interface of :class:`~convnp.parallel.threads.DataParallel`, and the same
    results bit for bit at the same count.

    Parameters
    ----------
    model : Sequential
    n_processes : int
    label_smoothing : float
        For each process's :class:`~convnp.losses.SoftmaxCrossEntropy`.

    The workers are forked at the first split step, from the model as it is then, and again whenever the model's
    arrays change shape or dtype. :meth:`close` ends them; so does the end of this process (each worker exits when
    its pipe closes). Inference (:meth:`predict`) splits its batch across the same processes.
    """

    def __init__(self, model, n_processes: int, label_smoothing: float = 0.0):
        if not isinstance(n_processes, int) or isinstance(n_processes, bool) or n_processes < 1:
            raise ValueError(f"ProcessDataParallel: n_processes must be a positive integer, got {n_processes!r}")
        if n_processes > 1 and not available():
            raise RuntimeError("ProcessDataParallel: worker processes need os.fork on Linux; use DataParallel")
        keep_freed_memory()
        self.model, self.n_processes, self.label_smoothing = model, n_processes, label_smoothing
        self._local = DataParallel(model, 1, label_smoothing)  # unsplit steps, as DataParallel runs them
        self._workers: list[_Worker] = []
        self._layout = None
        self._grad_names: list[str] = []
        self._shared: _SharedArrays | None = None
        self._finalizer = None

    # --- the workers' lifetime --------------------------------------------------------------------------------------

    def _start_workers(self, layout: tuple, x: np.ndarray, y: np.ndarray, rows: int) -> None:
        """Fork the workers for a model of ``layout``, with input blocks of ``rows`` samples shaped like ``x`` and
        ``y``'s."""
        self._stop_workers(kill=False)
        model = self.model
        self._layout = layout
        self._grad_names = list(model.parameters())  # the gradient blocks' order
        input_specs = [((rows, *x.shape[1:]), x.dtype), ((rows, *y.shape[1:]), y.dtype)]
        self._shared = _SharedArrays([(shape, np.dtype(dtype)) for _, shape, dtype in self._layout])
        grad_specs = [(p.shape, p.dtype) for p in model.parameters().values()]
        sys.stdout.flush()
        sys.stderr.flush()  # what is buffered now would otherwise be written by every worker too
        for _ in range(self.n_processes - 1):
            grads, inputs = _SharedArrays(grad_specs), _SharedArrays(input_specs)
            mine, theirs = Pipe()
            pid = os.fork()
            if pid == 0:  # the worker: never returns into the caller's code
                code = 0
                try:
                    mine.close()
                    for w in self._workers:
                        w.conn.close()  # a sibling's pipe held open here would hide that sibling's exit
                    _worker_main(theirs, model, self.label_smoothing, self._shared, grads, inputs)
                except BaseException:
                    code = 1
                    traceback.print_exc()
                finally:
                    os._exit(code)
            theirs.close()
            self._workers.append(_Worker(pid, mine, grads, inputs))
        # Ends the workers if this object is dropped without close(), or at interpreter exit.
        self._finalizer = weakref.finalize(self, _end_workers, list(self._workers), False)

    def _stop_workers(self, kill: bool) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._workers:
            _end_workers(self._workers, kill)
        self._workers = []

    def close(self) -> None:
        """End the worker processes."""
        self._stop_workers(kill=False)

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (empty before the first split step and after :meth:`close`)."""
        return [w.pid for w in self._workers]

    # --- steps -------------------------------------------------------------------------------------------------------

    def _ready_workers(self, bounds: list, x: np.ndarray, y: np.ndarray) -> list[_Worker]:
        """The workers for shards ``bounds[1:]``, forked afresh if the model's arrays changed shape or dtype (input
        blocks sized for the largest shard, shaped like ``x`` and ``y``), with the model's current parameters and
        state copied into the shared block."""
        stores = _stores(self.model)
        layout = _layout(stores)
        if not self._workers or self._layout != layout:
            self._start_workers(layout, x, y, max(b - a for a, b in bounds))
        for (store, key, _), array in zip(stores, self._shared.arrays):
            array[...] = store[key]
        return self._workers[: len(bounds) - 1]

    def train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int, bool]:
        """Forward and backward on ``(x, y)``; leaves the summed gradients in the model's ``grads``.

        Returns the batch's mean loss, the number of correct predictions, and whether every logit was finite.
        """
        model, n = self.model, len(y)
        bounds = shard_bounds(n, self.n_processes if model.shardable else 1)
        if len(bounds) == 1:
            return self._local.train_step(x, y)
        workers = self._ready_workers(bounds, x, y)
        header = {"op": "step", "total": n, "rng": model.rng_states() or None, "agree": collective(model)}

        def allreduce(a: np.ndarray) -> np.ndarray:
            parts = [a] + [w.receive("reduce")[1][0] for w in workers]
            total = np.array(parts[0], copy=True)  # in shard order, as ThreadAllreduce adds
            for part in parts[1:]:
                total += part
            for w in workers:
                w.send({"op": "sum"}, total)
            return total

        start, stop = bounds[0]
        try:
            for w, (a, b) in zip(workers, bounds[1:]):
                w.send_rows(dict(header, start=a, stop=b), x[a:b], y[a:b])
            set_shard(model, Shard(start, stop, n, allreduce))
            try:
                with blas_threads(1):
                    results = [shard_step(model, self._local.losses[0], x[start:stop], y[start:stop], n,
                                          allreduce if header["agree"] else None)]
            finally:
                set_shard(model, None)
            results += [(h["loss"], h["correct"], h["finite"]) for h, _ in (w.receive("done") for w in workers)]
        except BaseException:
            self._stop_workers(kill=True)  # they may be waiting in a collective this process left; start afresh
            raise
        if not all(r[2] for r in results):
            return float("nan"), 0, False
        total = model.gradients()  # this process's arrays, fresh from this backward: safe to add into
        for w in workers:
            for name, part in zip(self._grad_names, w.grads.arrays):
                total[name] += part
        return float(sum(r[0] for r in results)), sum(r[1] for r in results), True

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Logits for ``x`` in inference mode, its rows split across the processes as a training batch's are (each
        sample's logits depend on that sample alone, so the split changes nothing but which core computes them)."""
        model = self.model
        bounds = shard_bounds(len(x), self.n_processes)
        if len(bounds) == 1:
            return self._local.predict(x)
        x = model.check_batch(x)  # a bad input is this process's ValueError, not a worker's failure
        workers = self._ready_workers(bounds, x, np.zeros(len(x), dtype=np.int64))
        start, stop = bounds[0]
        try:
            for w, (a, b) in zip(workers, bounds[1:]):
                w.send_inputs({"op": "predict"}, x[a:b])
            with blas_threads(1):
                parts = [model.forward(x[start:stop], training=False)]
            parts += [w.receive("logits")[1][0].copy() for w in workers]
        except BaseException:
            self._stop_workers(kill=True)
            raise
        return np.concatenate(parts)
