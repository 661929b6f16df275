"""Splitting batches across forked worker processes: bit for bit what the same count of threads gives, and workers
that fail, die or are interrupted are reported and replaced, never left behind.

The faults wait on events, never on time: a worker is killed between steps and the test waits for its exit (a
pidfd) before the next step, or it kills itself at a named point inside a step (:mod:`convnp.fault_points`); a
SIGINT is followed by a step that the worker must answer, so it has run since the signal came.
"""

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convnp.parallel import processes
from convnp.parallel import threads as parallel_threads
from convnp.layers import BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, Layer, MaxPool2D, ReLU
from convnp.sequential import Sequential
from convnp.models import notebook
from convnp.optim import SGD
from convnp.parallel import DataParallel, data_parallel, resolve_backend, threads_for
from convnp.parallel import ProcessDataParallel, WorkerError
from convnp.train import Trainer
from helpers import run_weights, same_arrays, toy_npz, without_time

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
    assert all(finite for _, _, finite in got[0])  # and it did train: every step finite


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


def _reaped(pid) -> bool:
    """Whether ``pid``, a worker this process forked, has been waited for (so it is no zombie either)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def _wait_for_exit(pid, timeout=120) -> None:
    """Block until process ``pid`` has exited, without reaping it. The timeout only bounds a failure."""
    fd = os.pidfd_open(pid)
    try:
        assert select.select([fd], [], [], timeout)[0], f"process {pid} still running after {timeout} s"
    finally:
        os.close(fd)


def _fault_log(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("when", ["between steps", "inside a step"])
def test_a_killed_worker_is_reported_and_replaced(when, monkeypatch, tmp_path):
    """Between steps: the worker is dead before the next step is sent to it (the send fails). Inside a step: it
    dies after the step reached it (the answer never comes). Either way, the step raises the same WorkerError,
    with the exit status waited for, and the next step forks a fresh worker."""
    log = tmp_path / "fault.log"
    if when == "inside a step":
        monkeypatch.setenv("CONVNP_TEST_FAULT", "worker step 2: SIGKILL")  # inherited by the worker at its fork
        monkeypatch.setenv("CONVNP_TEST_FAULT_LOG", str(log))
    model = _flat_net()
    dp = ProcessDataParallel(model, 2)
    try:
        x, y = _batch()
        assert dp.train_step(x, y)[2]
        (pid,) = dp.pids
        if when == "between steps":
            os.kill(pid, signal.SIGKILL)
            _wait_for_exit(pid)
        assert _fault_log(log) == []
        with pytest.raises(WorkerError, match=rf"^training worker process {pid} ended unexpectedly "
                                              rf"\(killed by signal 9\)$"):
            dp.train_step(x, y)
        if when == "inside a step":
            assert _fault_log(log) == [{"point": "worker step 2", "action": "SIGKILL", "pid": pid}]
            monkeypatch.delenv("CONVNP_TEST_FAULT")  # the fresh worker is not to die too
        assert _reaped(pid)  # not left a zombie
        assert dp.pids == []  # ended after the failure
        assert dp.train_step(x, y)[2]
        assert len(dp.pids) == 1 and dp.pids != [pid]
    finally:
        dp.close()


def _ignores(pid: int, signum: int) -> bool:
    """Whether process ``pid`` ignores ``signum`` (its SigIgn mask in /proc)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    raise AssertionError(f"no SigIgn in /proc/{pid}/status")


def test_workers_ignore_ctrl_c_and_close_ends_them():
    model, twin = _flat_net(), _flat_net()
    dp, threads = ProcessDataParallel(model, 3), DataParallel(twin, 3)
    try:
        x, y = _batch()
        assert dp.train_step(x, y) == threads.train_step(x, y)
        pids = dp.pids
        assert len(pids) == 2
        if os.path.exists(f"/proc/{pids[0]}/status"):
            assert all(_ignores(pid, signal.SIGINT) for pid in pids)
        for pid in pids:
            os.kill(pid, signal.SIGINT)  # what Ctrl-C sends the whole process group
        # Each worker must answer this step, so it has run since the signal was sent: a SIGINT not ignored would have
        # been acted on by then (the default action ends the process, Python's handler raises KeyboardInterrupt in
        # it), and the step would fail with a WorkerError.
        x2, y2 = _batch(seed=6)
        assert dp.train_step(x2, y2) == threads.train_step(x2, y2)
        assert dp.pids == pids
    finally:
        threads.close()
        dp.close()
    assert dp.pids == [] and all(_reaped(pid) for pid in pids)  # ended and waited for


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits for a process that is not its child with a pidfd")
def test_workers_exit_when_their_training_process_is_killed(tmp_path):
    """SIGKILL the training process (no code of its own runs, so it ends no worker): its worker sees its pipe close
    and exits by itself rather than lingering. The worker is not the test's child, so its exit is waited for on a
    pidfd opened while it was certainly alive."""
    script = tmp_path / "train.py"
    script.write_text(f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_processes import _batch, _flat_net
from convnp.parallel import ProcessDataParallel

dp = ProcessDataParallel(_flat_net(), 2)
assert dp.train_step(*_batch())[2]
print(*dp.pids, flush=True)
sys.stdin.readline()  # the test has the worker's pidfd
os.kill(os.getpid(), signal.SIGKILL)
""")
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    try:
        (worker,) = map(int, proc.stdout.readline().split())
        fd = os.pidfd_open(worker)  # alive: it waits for its next step from the training process, which waits too
        try:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.wait(timeout=120) == -signal.SIGKILL
            assert select.select([fd], [], [], 120)[0], f"worker {worker} still running after its training process died"
        finally:
            os.close(fd)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
    monkeypatch.setattr(parallel_threads, "_default_threads", None)
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


def test_a_worker_killed_in_a_command_line_run_ends_it_with_one_line_and_resume_gives_the_same_bits(tmp_path):
    """The worker dies inside step 8 (epoch 2 of 6-step epochs, every batch split in two): the run exits 1 with one
    line naming the worker and its signal, last.npz holds epoch 1, and --resume ends on the bits of a run never
    interrupted."""
    from convnp.checkpoint import load_checkpoint
    from convnp.cli.main import main

    data = toy_npz(tmp_path / "toy.npz", 150)  # 135 training images in batches of 25: 5 of 25 and one of 10
    argv = ["train", "--model", "best", "--epochs", "3", "--batch-size", "25", "--data", str(data), "--lr", "0.01",
            "--threads", "2", "--backend", "processes", "--no-report"]
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    assert load_checkpoint(tmp_path / "whole" / "last.npz").meta["step"] == 18

    log = tmp_path / "fault.log"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "CONVNP_TEST_FAULT": "worker step 8: SIGKILL",
           "CONVNP_TEST_FAULT_LOG": str(log)}
    run = tmp_path / "killed"
    killed = subprocess.run([sys.executable, "-m", "convnp", *argv, "--out", str(run)], env=env,
                            capture_output=True, text=True, timeout=240)
    (landed,) = _fault_log(log)
    assert landed["point"] == "worker step 8" and landed["action"] == "SIGKILL"
    assert killed.returncode == 1, killed.stderr
    assert killed.stderr.splitlines() == [f"convnp: error: training worker process {landed['pid']} ended "
                                          "unexpectedly (killed by signal 9)"]
    meta = load_checkpoint(run / "last.npz").meta
    assert (meta["epoch"], meta["step"], meta.get("batch")) == (1, 6, None)
    assert not list(run.glob(".*.tmp"))

    whole = load_checkpoint(tmp_path / "whole" / "last.npz").meta["history"]
    assert without_time(meta["history"]) == without_time(whole[:1])

    assert main(["train", "--resume", str(run), "--no-report"]) == 0
    assert same_arrays(run_weights(run), run_weights(tmp_path / "whole"))
    assert without_time(load_checkpoint(run / "last.npz").meta["history"]) == without_time(whole)


def test_bad_backends_on_the_command_line(tmp_path, capsys):
    from convnp.cli.main import main

    with pytest.raises(SystemExit):
        main(["train", "--backend", "gpu", "--out", str(tmp_path / "r")])
    assert "invalid choice: 'gpu'" in capsys.readouterr().err
    assert main(["train", "--distributed", "--backend", "processes", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "--backend processes" in err and "mpirun -n N" in err


@pytest.mark.parametrize("train_first", [False, True])
def test_predict_splits_the_batch_across_the_worker_processes(train_first):
    """Inference on workers forked for it (or by training): the logits of one unsplit forward, BatchNorm reading the
    caller's running statistics as they are after training; batches larger than the shared block go by pipe."""
    model = _collective_net(np.random.default_rng(1))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 8, 8, 1)).astype(np.float32)
    dp = ProcessDataParallel(model, 3)
    try:
        if train_first:
            dp.train_step(x[:12], rng.integers(0, 10, 12))  # workers with a 4-row input block; BN statistics move
        pids = dp.pids
        logits = dp.predict(x)
        assert len(dp.pids) == 2 and (not train_first or dp.pids == pids)  # training's workers are reused
        np.testing.assert_allclose(logits, model.forward(x), rtol=1e-5, atol=1e-6)
        assert logits.shape == (40, 10) and logits.dtype == np.float32
        np.testing.assert_allclose(dp.predict(x[:5]), model.forward(x[:5]), rtol=1e-5, atol=1e-6)
        bad = x.copy()
        bad[-1, 0, 0, 0] = np.nan  # in the last worker's rows: refused here, before any worker sees it
        with pytest.raises(ValueError, match="finite"):
            dp.predict(bad)
        assert len(dp.pids) == 2  # a refused input does not cost the workers
    finally:
        dp.close()


def test_predict_reports_a_killed_worker_and_the_next_call_forks_fresh_ones():
    model = _collective_net(np.random.default_rng(1))
    x = np.random.default_rng(3).standard_normal((9, 8, 8, 1)).astype(np.float32)
    dp = ProcessDataParallel(model, 2)
    try:
        expected = dp.predict(x)
        (pid,) = dp.pids
        os.kill(pid, signal.SIGKILL)
        _wait_for_exit(pid)
        with pytest.raises(WorkerError, match=rf"worker process {pid} ended unexpectedly \(killed by signal 9\)"):
            dp.predict(x)
        assert dp.pids == [] and _reaped(pid)
        assert np.array_equal(dp.predict(x), expected) and dp.pids != [pid]
    finally:
        dp.close()
