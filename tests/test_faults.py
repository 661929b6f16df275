"""Faults during training, really done: SIGKILL at random moments (and inside a checkpoint write), Ctrl-C, a
diverging run, a run folder that cannot be written. After each, the run folder holds a checkpoint that loads, and
``--resume`` ends with the weights of the uninterrupted run, bit for bit.

The runs are tiny (400 MNIST training images, 3 epochs of 20 batches, with augmentation so that its Generator must
be restored too) and train in a ``convnp`` subprocess where a signal has to reach a real process. The kill points
come from a seeded Generator: each is "after the K-th line the run prints, plus D milliseconds", so they fall
anywhere in a step, a validation pass or a checkpoint write, and a failure can be replayed.
"""

from __future__ import annotations

import errno
import io
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import run_weights, same_arrays, without_time

import convnp.checkpoint
from convnp.checkpoint import load_checkpoint
from convnp.cli.main import main
from convnp.train import Callback, Checkpoint, Trainer, TrainingDiverged, TrainingInterrupted
from convnp.train.config import TrainConfig
from convnp.train.run import train_run

pytestmark = pytest.mark.mnist

EPOCHS, BATCHES = 3, 20  # 400 training images in batches of 20


def train_argv(data: Path, out: Path) -> list[str]:
    return ["train", "--data", str(data), "--epochs", str(EPOCHS), "--batch-size", "20", "--val-split", "0.2",
            "--augment", "--seed", "3", "--threads", "1", "--no-report", "--out", str(out)]


@pytest.fixture(scope="module")
def data(mnist, tmp_path_factory) -> Path:
    """500 MNIST training digits as a user's .npz: no test split, so a run ends without a 10k-image evaluation."""
    path = tmp_path_factory.mktemp("faults") / "digits.npz"
    np.savez(path, x=mnist[0][:500], y=mnist[1][:500])
    return path


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """The same run, uninterrupted."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(train_argv(data, out)) == 0
    return out


def history(run: Path) -> list[dict]:
    return without_time(load_checkpoint(run / "last.npz").meta["history"])


def assert_same_run(run: Path, reference: Path):
    assert same_arrays(run_weights(run), run_weights(reference)), "weights differ from the uninterrupted run"
    assert history(run) == history(reference)
    assert not list(run.glob(".*.tmp")), "a temporary file was left behind"


def config_of(run: Path, **changes) -> TrainConfig:
    import json

    settings = json.loads((run / "config.json").read_text())["settings"]
    return TrainConfig.from_dict({**settings, **changes})


# ---- a convnp process we can watch and signal -----------------------------------------------------------------------
ENV = {**os.environ, "CONVNP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


class Process:
    """``python -m convnp ARGV`` (or ``python SCRIPT ARGV``) with its stdout read line by line in a thread."""

    def __init__(self, argv: list[str], cwd: Path, script: Path | None = None):
        command = [sys.executable, *([str(script)] if script else ["-m", "convnp"]), *argv]
        self.proc = subprocess.Popen(command, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, predicate, timeout: float = 60) -> bool:
        """Read lines until one satisfies ``predicate``; False if the process ended first."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            if line is None:
                return False
            if predicate(line):
                return True

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        return code, self.proc.stderr.read()


# ---- SIGKILL --------------------------------------------------------------------------------------------------------
def test_sigkill_at_random_moments_then_resume_gives_the_same_bits(data, reference, tmp_path):
    rng = np.random.default_rng(7)  # the kill points: replayable
    run = tmp_path / "run"
    landed = 0
    for attempt in range(4):
        argv = train_argv(data, run) if not (run / "last.npz").exists() else ["train", "--resume", str(run)]
        process = Process(argv, tmp_path)
        n_lines, delay = int(rng.integers(2, 7)), float(rng.uniform(0.0, 0.08))
        lines = iter(range(1, 1000))  # line 1 is the header; later ones come after training started
        if process.wait_for_line(lambda line, lines=lines, n_lines=n_lines: next(lines) >= n_lines):
            time.sleep(delay)
        process.proc.send_signal(signal.SIGKILL)
        code, err = process.finish()
        landed += code == -signal.SIGKILL
        assert "Traceback" not in err
        # Whenever it died, what it left loads.
        checkpoint = load_checkpoint(run / "last.npz")
        assert 0 <= checkpoint.meta["epoch"] <= EPOCHS
        if (run / "best.npz").exists():
            load_checkpoint(run / "best.npz")
    assert landed >= 2, f"only {landed} of the 4 kills hit a running process"
    assert main(["train", "--resume", str(run)]) == 0
    assert_same_run(run, reference)


PAUSING_WRITER = '''\
"""convnp, with the N-th atomic write of one file stopped half-way (half its bytes on disk, fsynced): a marker file
says so, and the process then waits to be killed."""
import io, os, sys, time
from pathlib import Path

import convnp.checkpoint as checkpoint

name, nth, marker = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
real_write, count = checkpoint.atomic_write, [0]


def atomic_write(path, write):
    if Path(path).name == name:
        count[0] += 1
        if count[0] == nth:
            def half_then_wait(f):
                buffer = io.BytesIO()
                write(buffer)
                f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                f.flush()
                os.fsync(f.fileno())
                marker.touch()
                time.sleep(300)
            return real_write(path, half_then_wait)
    return real_write(path, write)


checkpoint.atomic_write = atomic_write
from convnp.cli.main import main

sys.exit(main(sys.argv[4:]))
'''


@pytest.mark.parametrize(("name", "nth", "left"), [("last.npz", 3, 1), ("best.npz", 1, 0)],
                         ids=["last.npz at epoch 2", "best.npz at epoch 1"])
def test_sigkill_inside_a_checkpoint_write(data, reference, tmp_path, name, nth, left):
    """Killed with half of a checkpoint on disk: the old checkpoint is whole, and resume gives the same bits."""
    script, marker, run = tmp_path / "pausing.py", tmp_path / "paused", tmp_path / "run"
    script.write_text(PAUSING_WRITER)
    process = Process([name, str(nth), str(marker), *train_argv(data, run)], tmp_path, script=script)
    deadline = time.monotonic() + 60
    while not marker.exists() and process.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists(), process.finish()[1]
    half_written = list(run.glob(f".{name}.*.tmp"))
    assert len(half_written) == 1 and half_written[0].stat().st_size > 0
    process.proc.send_signal(signal.SIGKILL)
    assert process.finish()[0] == -signal.SIGKILL
    assert load_checkpoint(run / "last.npz").meta["epoch"] == left
    assert main(["train", "--resume", str(run)]) == 0
    assert_same_run(run, reference)
    assert same_arrays(run_weights(run), run_weights(reference))


# ---- Ctrl-C ---------------------------------------------------------------------------------------------------------
INTERRUPTED = re.compile(
    r"^convnp: interrupted \(Ctrl-C\): stopped after step (\d+) \(epoch (\d+), (\d+) of (\d+) batches done\); "
    r"checkpoint saved in (\S+); resume with: (convnp train --resume \S+)$"
)


def test_ctrl_c_stops_after_the_step_saves_says_how_to_resume_and_exits_130(data, reference, tmp_path):
    run = tmp_path / "run"
    process = Process(train_argv(data, run), tmp_path)
    assert process.wait_for_line(lambda line: line.startswith(f"epoch 2/{EPOCHS} "))  # in the middle of epoch 2
    process.proc.send_signal(signal.SIGINT)
    code, err = process.finish()
    assert code == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    match = INTERRUPTED.match(lines[0])
    assert match, lines[0]
    step, epoch, batch, n_batches = (int(g) for g in match.groups()[:4])
    assert n_batches == BATCHES and 0 <= batch < BATCHES and step == (epoch - 1) * BATCHES + batch
    assert Path(tmp_path / match.group(5)) == run / "last.npz"
    meta = load_checkpoint(run / "last.npz").meta
    assert (meta["epoch"], meta.get("batch", 0), meta["step"]) == (epoch - 1, batch, step)
    # The printed command, run as printed (from the folder the run was started in), finishes the run exactly.
    command = shlex.split(match.group(6))
    assert command[:2] == ["convnp", "train"]
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert main(command[1:]) == 0
    finally:
        os.chdir(cwd)
    assert_same_run(run, reference)


class StopAt(Callback):
    """Asks the trainer to stop after global step ``step``, as the Ctrl-C handler does."""

    def __init__(self, step: int):
        self.step = step

    def on_batch_end(self, batch, logs):
        if self.trainer.step == self.step:
            self.trainer.request_stop("stop requested by the test")


@pytest.mark.parametrize("step", [27, 40], ids=["mid-epoch", "at an epoch's end"])
def test_a_stop_between_two_steps_resumes_to_the_same_bits(reference, tmp_path, step):
    """Mid-epoch the checkpoint records the batch, the epoch's sums and the Generators; resume replays exactly."""
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match=f"stopped after step {step} ") as info:
        train_run(config_of(reference), run, stream=io.StringIO(), callbacks=[StopAt(step)])
    assert isinstance(info.value, KeyboardInterrupt)
    meta = load_checkpoint(run / "last.npz").meta
    assert meta["step"] == step and meta["epoch"] * BATCHES + meta.get("batch", 0) == step
    if step % BATCHES:
        assert meta["batch"] == step % BATCHES and meta["epoch_sums"]["seen"] == 20 * meta["batch"]
    resumed = train_run(None, run, resume=True, stream=io.StringIO())
    assert resumed.history and len(resumed.history) == EPOCHS
    assert_same_run(run, reference)


# ---- divergence -----------------------------------------------------------------------------------------------------
class ExplodeAfterEpoch1(Callback):
    """From epoch 2 on, a learning rate of 1e30 (the weights overflow within two steps); remembers last.npz's bytes
    as the epoch-1 checkpoint left them."""

    def on_epoch_end(self, epoch, logs):
        if epoch == 0:
            folder = next(c for c in self.trainer.callbacks if isinstance(c, Checkpoint)).folder
            self.saved = (folder / "last.npz").read_bytes()
            self.trainer.schedule = lambda step: 1e30


def test_divergence_names_the_step_suggests_a_lower_rate_and_keeps_the_last_good_checkpoint(reference, tmp_path):
    run, explode = tmp_path / "run", ExplodeAfterEpoch1()
    with pytest.raises(TrainingDiverged) as info:
        train_run(config_of(reference), run, stream=io.StringIO(), callbacks=[explode])
    message = str(info.value)
    assert "\n" not in message
    found = re.search(r"NaN or infinite at step (\d+) \(epoch 2, batch (\d+) of 20\)", message)
    assert found and int(found.group(1)) == BATCHES + int(found.group(2)) == info.value.step, message
    assert "try a lower learning rate (now 1e+30)" in message and "--skip-nonfinite" in message
    assert f"{run / 'last.npz'} (epoch 1) is kept" in message
    assert (run / "last.npz").read_bytes() == explode.saved
    checkpoint = load_checkpoint(run / "last.npz")  # loads: every weight finite
    assert checkpoint.meta["epoch"] == 1


def test_cli_divergence_is_one_line_exit_1(data, tmp_path, capsys):
    run = tmp_path / "run"
    argv = train_argv(data, run)
    argv[argv.index("--augment")] = "--lr=1e30"
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("convnp: error: ") and "Traceback" not in err
    assert re.search(r"at step \d+ \(epoch 1, batch \d+ of 20\); try a lower learning rate", err), err
    assert "(epoch 0, the initial weights) is kept" in err
    assert load_checkpoint(run / "last.npz").meta["epoch"] == 0


def tiny_data(n: int = 48, huge: int | None = 5):
    """8x8 one-channel images, labels from which half holds ink; sample ``huge`` at 3e38 overflows any conv sum."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (n, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 2, n)
    x[y == 1, :4] += 2.0
    if huge is not None:
        x[huge] = 3e38
    return x, y


def tiny_model():
    from convnp import BatchNorm2D, Conv2D, Dense, Flatten, ReLU, Sequential

    rng = np.random.default_rng(1)
    return Sequential([Conv2D(1, 3, 3, rng=rng), BatchNorm2D(3), ReLU(), Flatten(), Dense(108, 2, rng=rng)],
                      input_shape=(8, 8, 1))


def test_skip_nonfinite_skips_the_bad_batch_and_counts_it(caplog):
    from convnp.optim import SGD

    x, y = tiny_data()
    model = tiny_model()
    trainer = Trainer(model, SGD(0.05), skip_nonfinite=2, threads=1)
    with caplog.at_level("WARNING", logger="convnp.train"):
        history = trainer.fit(x, y, epochs=2, batch_size=8, rng=np.random.default_rng(2))
    assert [row["skipped"] for row in history] == [1, 1] and trainer.skipped_total == 2
    assert trainer.step == 12
    assert all(np.isfinite(v).all() for v in model.state_dict().values())  # BatchNorm's statistics restored
    assert sum("batch skipped" in r.getMessage() for r in caplog.records) == 2
    assert 0 <= history[-1]["accuracy"] <= 1 and np.isfinite(history[-1]["loss"])

    # One more bad batch than allowed stops the run, saying so.
    trainer = Trainer(tiny_model(), SGD(0.05), skip_nonfinite=1, threads=1)
    with pytest.raises(TrainingDiverged, match=r"at step \d+ \(epoch 2, batch \d of 6\).*1 non-finite batch\(es\) "
                                               r"skipped already, the most skip_nonfinite=1 allows"):
        trainer.fit(x, y, epochs=2, batch_size=8, rng=np.random.default_rng(2))
    with pytest.raises(ValueError, match="skip_nonfinite must be an integer >= 0, got -1"):
        Trainer(tiny_model(), SGD(0.05), skip_nonfinite=-1)


def test_skip_nonfinite_on_the_command_line(data, tmp_path, capsys):
    run = tmp_path / "run"
    argv = train_argv(data, run) + ["--skip-nonfinite", "2"]
    argv[argv.index("--epochs") + 1] = "1"
    assert main(argv) == 0
    import csv

    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["skipped"] for r in rows] == ["0"]
    assert config_of(run).skip_nonfinite == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--skip-nonfinite", "-1"])
    assert exit_info.value.code == 2 and "expected an integer >= 0, got '-1'" in capsys.readouterr().err


# ---- a run folder that cannot be written ----------------------------------------------------------------------------
def test_a_folder_that_cannot_be_created_fails_before_training(data, tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    assert main(train_argv(data, tmp_path / "file" / "run")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot create the run folder" in err and "Not a directory" in err
    assert (tmp_path / "file").read_text() == "a file, not a folder"


def test_a_read_only_folder_fails_before_training(data, tmp_path, capsys, monkeypatch):
    # As root, chmod cannot make a folder read-only, so the file system's answer is injected: EROFS on every write.
    def read_only(path, write):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    import convnp.train.run

    monkeypatch.setattr(convnp.train.run, "atomic_write", read_only)
    monkeypatch.setattr(convnp.checkpoint, "atomic_write", read_only)
    run = tmp_path / "run"
    assert main(train_argv(data, run)) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and f"cannot write to the run folder {run}: Read-only file system" in err
    assert "epoch 1" not in out and not (run / "last.npz").exists()


def test_disk_full_mid_write_keeps_the_previous_checkpoint_then_resume_finishes(data, reference, tmp_path, capsys,
                                                                                  monkeypatch):
    real_write, count = convnp.checkpoint.atomic_write, [0]

    def disk_fills_at_the_third_last_npz(path, write):
        if Path(path).name == "last.npz":
            count[0] += 1
            if count[0] == 3:
                def half_then_enospc(f):
                    buffer = io.BytesIO()
                    write(buffer)
                    f.write(buffer.getvalue()[:1000])
                    raise OSError(errno.ENOSPC, "No space left on device")
                return real_write(path, half_then_enospc)
        return real_write(path, write)

    monkeypatch.setattr(convnp.checkpoint, "atomic_write", disk_fills_at_the_third_last_npz)
    run = tmp_path / "run"
    assert main(train_argv(data, run)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (f"could not write the checkpoint {run / 'last.npz'}: No space left on device (free some space, or "
            "train into another folder with --out); last.npz still holds epoch 1") in err
    assert load_checkpoint(run / "last.npz").meta["epoch"] == 1
    assert not list(run.glob(".*.tmp"))
    monkeypatch.undo()  # space freed
    assert main(["train", "--resume", str(run)]) == 0
    assert_same_run(run, reference)


def test_a_second_ctrl_c_stops_at_once():
    from convnp.optim import SGD
    from convnp.train.run import _stop_on_sigint

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("another SIGINT handler is installed; train_run leaves it alone")
    trainer = Trainer(tiny_model(), SGD(0.1))
    with _stop_on_sigint(trainer):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs at the next bytecode of the main thread
        assert trainer.stop_requested == "interrupted (Ctrl-C)"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back as it was
