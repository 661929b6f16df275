"""Splitting batches across forked worker processes: bit for bit what the same count of threads gives, and workers
that fail, die or are interrupted are reported and replaced, never left behind."""

import json
import os
import signal
import time

import numpy as np
import pytest

from convnp import parallel, processes
from convnp.layers import BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2D, ReLU
from convnp.model import Sequential
from convnp.models import notebook
from convnp.optim import SGD
from convnp.parallel import DataParallel, data_parallel, resolve_backend, threads_for
from convnp.processes import ProcessDataParallel, WorkerError
from convnp.train import Trainer
from helpers import run_weights, same_arrays, toy_npz

pytestmark = pytest.mark.skipif(not processes.available(), reason="worker processes need os.fork on Linux")


def _collective_net(rng, dtype=np.float32):
    """BatchNorm (an all-reduce in forward and backward) and Dropout (the whole batch's mask) in one small net."""
    init = {"rng": rng, "dtype": dtype}
    return Sequential([
        Conv2D(1, 4, 3, padding="same", bias=False, **init),  # (N, 8, 8, 4)
        BatchNorm2D(4, dtype=dtype),
        ReLU(),
        MaxPool2D(2),  # (N, 4, 4, 4)
        Flatten(),  # (N, 64)
        Dense(64, 16, **init),
        BatchNorm1D(16, dtype=dtype),
        ReLU(),
        Dropout(0.3, rng=rng),
        Dense(16, 10, **init),
    ], input_shape=(8, 8, 1))


def _notebook(rng, dtype=np.float32):
    return notebook(rng=rng, dtype=dtype)


def _steps(make, backend, n_workers, sizes, *, dtype=np.float32, label_smoothing=0.0, side=28):
    """Train steps of batches of ``sizes`` with plain SGD; returns (step results, final state, Generator states)."""
    rng = np.random.default_rng(0)
    model = make(np.random.default_rng(1), dtype)
    dp = (ProcessDataParallel if backend == "processes" else DataParallel)(model, n_workers, label_smoothing)
    results = []
    try:
        for size in sizes:
            x = rng.standard_normal((size, side, side, 1)).astype(dtype)
            y = rng.integers(0, 10, size)
            results.append(dp.train_step(x, y))
            for name, g in model.gradients().items():
                model.parameters()[name][...] -= 0.05 * g
    finally:
        dp.close()
    return results, model.state_dict(), model.rng_states()


def _same(a, b):
    results_a, state_a, rng_a = a
    results_b, state_b, rng_b = b
    assert results_a == results_b  # loss, correct and finite of every step, exactly
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert np.array_equal(state_a[key], state_b[key]), key
    assert rng_a == rng_b


@pytest.mark.parametrize("n_workers", [2, 3])
@pytest.mark.parametrize("make, side", [(_notebook, 28), (_collective_net, 8)])
def test_processes_give_the_bits_of_threads(make, side, n_workers):
    # Uneven shards (25, 7), fewer rows than workers (2 with 3 workers: one worker idle), and one row: unsplit
    # (BatchNorm cannot train on one sample).
    sizes = [24, 25, 7, 2, 24] + ([1, 24] if make is _notebook else [])
    expected = _steps(make, "threads", n_workers, sizes, side=side)
    got = _steps(make, "processes", n_workers, sizes, side=side)
    _same(got, expected)
    assert got[0][-1][2]  # and it did train: every step finite


def test_processes_with_label_smoothing_and_float64():
    sizes = [16, 9]
    kw = dict(dtype=np.float64, label_smoothing=0.1, side=8)
    _same(_steps(_collective_net, "processes", 2, sizes, **kw), _steps(_collective_net, "threads", 2, sizes, **kw))


@pytest.mark.parametrize("make, side", [(_notebook, 28), (_collective_net, 8)])
def test_a_non_finite_shard_stops_every_shard(make, side):
    rng = np.random.default_rng(2)
    model = make(np.random.default_rng(3), np.float32)
    dp = ProcessDataParallel(model, 2)
    try:
        x = rng.standard_normal((12, side, side, 1)).astype(np.float32)
        y = rng.integers(0, 10, 12)
        bad = x.copy()
        bad[-1] = 3e38  # finite, but it overflows: non-finite logits in the worker's shard only
        with np.errstate(all="ignore"):
            loss, correct, finite = dp.train_step(bad, y)
        assert not finite and np.isnan(loss) and correct == 0
        pids = dp.pids
        assert dp.train_step(x, y)[2]  # the workers carry on
        assert dp.pids == pids
    finally:
        dp.close()


class _FailsInWorker(Layer):
    """Identity, except on a shard that does not start at row 0: there it raises."""

    input_ndim = 2
    input_layout = "(N, F)"

    def _forward(self, x, training):
        if self.shard is not None and self.shard.start > 0:
            raise ValueError("the second shard is refused")
        return x, ()

    def _backward(self, dout, cache):
        return dout

    def output_shape(self, input_shape):
        return input_shape


def _flat_net(extra=()):
    rng = np.random.default_rng(4)
    return Sequential([Flatten(), *extra, Dense(16, 10, rng=rng)], input_shape=(4, 4, 1))


def _batch(n=8, seed=5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4, 4, 1)).astype(np.float32), rng.integers(0, 10, n)


def test_a_failing_worker_is_reported_and_replaced():
    model = _flat_net([_FailsInWorker()])
    dp = ProcessDataParallel(model, 2)
    try:
        x, y = _batch()
        with pytest.raises(WorkerError, match=r"failed: ValueError: the second shard is refused") as caught:
            dp.train_step(x, y)
        assert 'raise ValueError("the second shard is refused")' in caught.value.worker_traceback
        assert dp.pids == []  # ended after the failure
        model.layers[1] = Flatten()  # a model that works; the next step forks fresh workers
        model.layers[1].input_ndim = 2
        assert dp.train_step(x, y)[2] and len(dp.pids) == 1
    finally:
        dp.close()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_worker_is_reported_and_replaced():
    model = _flat_net()
    dp = ProcessDataParallel(model, 2)
    try:
        x, y = _batch()
        assert dp.train_step(x, y)[2]
        (pid,) = dp.pids
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerError, match=rf"process {pid} ended unexpectedly \(killed by signal 9\)"):
            dp.train_step(x, y)
        assert not _alive(pid)  # reaped, not a zombie
        assert dp.train_step(x, y)[2]
        assert dp.pids and dp.pids != [pid]
    finally:
        dp.close()


def test_workers_ignore_ctrl_c_and_close_ends_them():
    model = _flat_net()
    dp = ProcessDataParallel(model, 3)
    x, y = _batch()
    expected = DataParallel(_flat_net(), 3).train_step(x, y)
    assert dp.train_step(x, y) == expected
    pids = dp.pids
    assert len(pids) == 2
    for pid in pids:
        os.kill(pid, signal.SIGINT)  # what Ctrl-C sends the whole process group
    time.sleep(0.2)
    assert all(_alive(pid) for pid in pids)
    assert dp.train_step(x, y)[2] and dp.pids == pids
    dp.close()
    assert dp.pids == [] and not any(_alive(pid) for pid in pids)


def test_a_changed_model_gets_fresh_workers():
    rng = np.random.default_rng(6)
    model = _notebook(np.random.default_rng(7))
    twin = _notebook(np.random.default_rng(7))
    dp, threads = ProcessDataParallel(model, 2), DataParallel(twin, 2)
    try:
        x = rng.standard_normal((10, 28, 28, 1))
        y = rng.integers(0, 10, 10)
        assert dp.train_step(x.astype(np.float32), y) == threads.train_step(x.astype(np.float32), y)
        pids = dp.pids
        model.astype(np.float64)
        twin.astype(np.float64)
        threads.close()
        threads = DataParallel(twin, 2)  # thread replicas are made with the model: they need remaking
        assert dp.train_step(x, y) == threads.train_step(x, y)
        assert dp.pids != pids
        for name, g in model.gradients().items():
            assert g.dtype == np.float64 and np.array_equal(g, twin.gradients()[name]), name
    finally:
        dp.close()
        threads.close()


def test_trainer_backends_train_alike():
    def fit(backend):
        rng = np.random.default_rng(8)
        x, y = rng.standard_normal((70, 8, 8, 1)).astype(np.float32), rng.integers(0, 10, 70)
        model = _collective_net(np.random.default_rng(9))
        trainer = Trainer(model, SGD(0.05, momentum=0.9), threads=2, backend=backend)
        history = trainer.fit(x, y, epochs=2, batch_size=16, rng=np.random.default_rng(10))
        return trainer, [{k: v for k, v in h.items() if k != "time"} for h in history], model.state_dict()

    t_threads, h_threads, s_threads = fit("threads")
    t_procs, h_procs, s_procs = fit("processes")
    assert (t_threads.backend, t_procs.backend) == ("threads", "processes")
    assert h_procs == h_threads
    assert all(np.array_equal(s_procs[k], s_threads[k]) for k in s_threads)
    assert t_procs.parallel is None  # fit closed it, and with it the workers


def test_backend_choice(monkeypatch):
    assert resolve_backend("auto", 2) == "processes"
    assert resolve_backend("auto", 1) == resolve_backend("processes", 1) == "threads"
    assert resolve_backend("threads", 4) == "threads"
    with pytest.raises(ValueError, match=r"backend must be one of \['auto', 'threads', 'processes'\], got 'gpu'"):
        resolve_backend("gpu", 2)
    assert isinstance(data_parallel(_flat_net(), 2), ProcessDataParallel)
    assert isinstance(data_parallel(_flat_net(), 2, "threads"), DataParallel)
    with pytest.raises(ValueError, match="backend must be one of"):
        Trainer(_flat_net(), SGD(0.1), backend="fork")
    monkeypatch.setattr(processes, "available", lambda: False)  # as on macOS or Windows
    assert resolve_backend("auto", 2) == "threads"
    with pytest.raises(RuntimeError, match="backend 'processes' needs os.fork on Linux"):
        resolve_backend("processes", 2)


def test_processes_split_smaller_steps_than_threads(monkeypatch):
    monkeypatch.setattr(parallel, "_default_threads", None)
    monkeypatch.delenv("CONVNP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    model = _notebook(np.random.default_rng(0))  # 0.31 MFLOP per training image
    assert threads_for(model, 64, "threads") == 1  # 20 MFLOP per step: under 2 x MIN_FLOPS_PER_THREAD
    assert threads_for(model, 64, "processes") == threads_for(model, 64, "auto") == 2
    assert threads_for(model, 16, "processes") == 1


def test_the_command_line_trains_alike_on_both_backends(tmp_path):
    from convnp.cli.main import main

    data = toy_npz(tmp_path / "toy.npz", 150)
    common = ["train", "--model", "best", "--epochs", "1", "--batch-size", "25", "--data", str(data), "--lr", "0.01",
              "--threads", "2", "--no-report"]
    for backend in ("threads", "processes"):
        assert main([*common, "--backend", backend, "--out", str(tmp_path / backend)]) == 0
        results = json.loads((tmp_path / backend / "results.json").read_text())
        assert (results["threads"], results["backend"]) == (2, backend)
    assert same_arrays(run_weights(tmp_path / "threads"), run_weights(tmp_path / "processes"))


def test_bad_backends_on_the_command_line(tmp_path, capsys):
    from convnp.cli.main import main

    with pytest.raises(SystemExit):
        main(["train", "--backend", "gpu", "--out", str(tmp_path / "r")])
    assert "invalid choice: 'gpu'" in capsys.readouterr().err
    assert main(["train", "--distributed", "--backend", "processes", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "--backend processes" in err and "mpirun -n N" in err
