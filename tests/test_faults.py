"""Faults during training, really done: SIGKILL at points drawn at random (and inside a checkpoint write), Ctrl-C,
a diverging run, a run folder that cannot be written. After each, the run folder holds a checkpoint that loads,
holding every epoch the run reported finished, and ``--resume`` ends with the weights of the uninterrupted run, bit
for bit.

The runs are tiny (400 MNIST training images, 3 epochs of 20 batches, with augmentation so that its Generator must
be restored too) and train in a ``convnp`` subprocess where a signal has to reach a real process. Every fault lands
at a named point of the run (``convnp.fault_points``: "step 27", "validation 2", "write last.npz 3", ...), never
after a delay or a number of printed lines, so the tests behave alike on a fast idle machine, a busy one and one
core; the process logs the point before acting and each test asserts where its fault landed.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import run_weights, same_arrays, without_time

import convnp.checkpoint
from convnp import fault_points
from convnp.checkpoint import load_checkpoint
from convnp.cli.main import main
from convnp.train import Callback, Checkpoint, Trainer, TrainingDiverged, TrainingInterrupted
from convnp.train.config import TrainConfig
from convnp.train.run import train_run

pytestmark = pytest.mark.mnist

EPOCHS, BATCHES = 3, 20  # 400 training images in batches of 20
FAILURE_BOUND_S = 300  # only bounds how long a broken run takes to fail; nothing waits for it to pass


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


def metrics_rows(run: Path) -> list[str]:
    """metrics.csv without its time column."""
    return [line.rsplit(",", 1)[0] if line.count(",") == 6 else line
            for line in (run / "metrics.csv").read_text().splitlines()]


def assert_same_run(run: Path, reference: Path):
    assert same_arrays(run_weights(run), run_weights(reference)), "weights differ from the uninterrupted run"
    assert history(run) == history(reference)
    assert len(metrics_rows(run)) == EPOCHS + 1 and metrics_rows(run) == metrics_rows(reference)
    assert not list(run.glob(".*.tmp")), "a temporary file was left behind"


def epochs_printed(out: str) -> list[int]:
    """The epochs a run's output reports as finished (``epoch 2/3  loss ...``), in order."""
    return [int(e) for e in re.findall(rf"^epoch (\d+)/{EPOCHS}  loss ", out, flags=re.M)]


def assert_resumed(out: str, run: Path, epoch: int, batch: int = 0) -> None:
    """The output of a resume that continued at 0-based ``epoch`` (after ``batch`` of its batches) and trained only
    what was left: a resume that retrained from the start would give the same bits, and fail here."""
    where = f"at epoch {epoch + 1}" + (f", batch {batch + 1}" if batch else "")
    assert f"resuming {run} {where}:" in out, out
    assert epochs_printed(out) == list(range(epoch + 1, EPOCHS + 1)), out


def config_of(run: Path, **changes) -> TrainConfig:
    settings = json.loads((run / "config.json").read_text())["settings"]
    return TrainConfig.from_dict({**settings, **changes})


# ---- a convnp process with one fault point armed --------------------------------------------------------------------
ENV = {**os.environ, "CONVNP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@dataclass
class Faulted:
    """What a ``convnp`` process armed with one fault left behind."""

    code: int
    out: str
    err: str
    landed: list[dict]  # the fault log's lines: where the fault fired

    def reported_epochs(self) -> int:
        """The last epoch the run printed as finished (``epoch 2/3  loss ...``), 0 if none."""
        done = epochs_printed(self.out)
        return done[-1] if done else 0


class FaultedProcess:
    """``python -m convnp ARGV`` with ``CONVNP_TEST_FAULT="POINT: ACTION"`` and a fault log in ``folder``."""

    def __init__(self, argv: list[str], folder: Path, point: str, action: str):
        self.log = folder / f"fault-{time.monotonic_ns()}.log"
        env = {**ENV, fault_points.ENV: f"{point}: {action}", fault_points.LOG_ENV: str(self.log)}
        self.proc = subprocess.Popen([sys.executable, "-m", "convnp", *argv], cwd=folder, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def landed(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def wait_until_paused(self) -> dict:
        """Wait for the process to log that it paused at its point (the event), then return the log line."""
        deadline = time.monotonic() + FAILURE_BOUND_S
        while not self.landed():
            assert self.proc.poll() is None, f"the run ended (exit {self.proc.returncode}) without reaching its point"
            assert time.monotonic() < deadline, "the run did not reach its point"
            time.sleep(0.01)
        return self.landed()[0]

    def release(self) -> None:
        Path(f"{self.log}.go").touch()

    def finish(self) -> Faulted:
        out, err = self.proc.communicate(timeout=FAILURE_BOUND_S)
        return Faulted(self.proc.returncode, out, err, self.landed())


def run_faulted(argv: list[str], folder: Path, point: str, action: str = "SIGKILL") -> Faulted:
    return FaultedProcess(argv, folder, point, action).finish()


# ---- SIGKILL --------------------------------------------------------------------------------------------------------
def kill_points(rng: np.random.Generator, start_epoch: int) -> tuple[str, int]:
    """A point after ``start_epoch`` epochs, drawn at random, and the epoch ``last.npz`` must then hold.

    Write counts are per process: its K-th write of ``last.npz`` is epoch ``start_epoch + K``'s, except that a
    process starting at epoch 0 (new, or resumed from the initial weights) first writes the epoch-0 checkpoint.
    ``best.npz`` is certain to be written only at epoch 1. ``metrics.csv`` is written after the epoch's checkpoint,
    so a kill there loses nothing.
    """
    fresh = start_epoch == 0
    kinds = ["step", "validation", "epoch-end", "write last.npz", "write metrics.csv"] + (["write best.npz"] * fresh)
    kind = kinds[int(rng.integers(len(kinds)))]
    epoch = int(rng.integers(start_epoch + 1, EPOCHS + 1))  # the epoch (1-based) the point falls in
    if kind == "step":
        step = int(rng.integers((epoch - 1) * BATCHES + 1, epoch * BATCHES + 1))
        return f"step {step}", epoch - 1
    if kind in ("validation", "epoch-end"):
        return f"{kind} {epoch}", epoch - 1
    if kind == "write last.npz":
        return f"write last.npz {epoch - start_epoch + fresh}", epoch - 1
    if kind == "write best.npz":
        return "write best.npz 1", 0
    return f"write metrics.csv {epoch - start_epoch}", epoch


@pytest.mark.parametrize("seed", [0, 1])  # between them: every kind of point, 9 kills
def test_sigkill_at_random_points_then_resume_gives_the_same_bits(data, reference, tmp_path, seed, capsys):
    """Killed at points drawn from a seeded Generator until the run has none left after its checkpoint: each time the
    kill lands where it was aimed, ``last.npz`` loads and holds exactly the epochs finished before that point (at
    least every epoch the run printed as finished), and the final resume ends with the uninterrupted run's bits."""
    rng = np.random.default_rng(seed)  # the kill points: replayable
    run, kills = tmp_path / "run", []
    while True:
        fresh = not (run / "last.npz").exists()
        start = 0 if fresh else load_checkpoint(run / "last.npz").meta["epoch"]
        if start == EPOCHS or len(kills) == 5:
            break
        point, holds = kill_points(rng, start)
        argv = train_argv(data, run) if fresh else ["train", "--resume", str(run)]
        faulted = run_faulted(argv, tmp_path, point)
        kills.append(point)
        if not fresh:
            assert f"resuming {run} at epoch {start + 1}:" in faulted.out
            assert all(epoch > start for epoch in epochs_printed(faulted.out)), faulted.out
        assert faulted.code == -signal.SIGKILL, (point, faulted.err)
        assert [(line["point"], line["action"]) for line in faulted.landed] == [(point, "SIGKILL")]
        assert "Traceback" not in faulted.err
        checkpoint = load_checkpoint(run / "last.npz")  # whenever it died, what it left loads
        assert checkpoint.meta["epoch"] == holds, f"killed at {point!r}: last.npz holds epoch {checkpoint.meta['epoch']}"
        assert checkpoint.meta["epoch"] >= faulted.reported_epochs(), f"killed at {point!r}: a reported epoch was lost"
        assert "batch" not in checkpoint.meta  # a kill never leaves a mid-epoch checkpoint
        if (run / "best.npz").exists():
            load_checkpoint(run / "best.npz")
    assert len(kills) >= 2, kills
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    if start < EPOCHS:
        assert_resumed(capsys.readouterr().out, run, start)
    assert_same_run(run, reference)


@pytest.mark.parametrize(("point", "left"), [("write last.npz 3", 1), ("write best.npz 1", 0),
                                             ("write last.npz 1", None)],
                         ids=["last.npz at epoch 2", "best.npz at epoch 1", "last.npz at epoch 0"])
def test_sigkill_inside_a_checkpoint_write(data, reference, tmp_path, point, left, capsys):
    """Killed with the new checkpoint in its temporary file, not yet renamed: the old checkpoint is whole, and resume
    (or, killed before the first step, starting again) gives the same bits and removes the temporary file."""
    run = tmp_path / "run"
    faulted = run_faulted(train_argv(data, run), tmp_path, point)
    assert faulted.code == -signal.SIGKILL and [line["point"] for line in faulted.landed] == [point], faulted.err
    name = point.split()[1]
    half_written = list(run.glob(f".{name}.*.tmp"))
    assert len(half_written) == 1 and half_written[0].stat().st_size > 0
    if left is None:  # killed while writing the initial weights: no step was taken, nothing to resume
        assert not (run / "last.npz").exists() and faulted.reported_epochs() == 0
        assert main(["train", "--resume", str(run)]) == 1
        assert main(train_argv(data, run)) == 0
    else:
        assert load_checkpoint(run / "last.npz").meta["epoch"] == left
        capsys.readouterr()
        assert main(["train", "--resume", str(run)]) == 0
        assert_resumed(capsys.readouterr().out, run, left)
    assert_same_run(run, reference)


# ---- Ctrl-C ---------------------------------------------------------------------------------------------------------
INTERRUPTED = re.compile(
    r"^convnp: interrupted \(Ctrl-C\): stopped after step (\d+) \(epoch (\d+), (\d+) of (\d+) batches done\); "
    r"checkpoint saved in (\S+); resume with: (convnp train --resume \S+)$"
)


@pytest.mark.parametrize(("point", "step"), [("step 27", 27), ("validation 2", 40), ("write last.npz 2", 20)],
                         ids=["between two steps", "in a validation pass", "in a checkpoint write"])
def test_ctrl_c_stops_after_the_step_saves_says_how_to_resume_and_exits_130(data, reference, tmp_path, point, step,
                                                                            capsys):
    """SIGINT from outside while the run is paused at ``point``: the run stops after ``step`` (the step in progress,
    or the epoch whose validation or checkpoint was in progress, finishes first), saves there, prints one line with the
    command that resumes it, exits 130; that command, run as printed, finishes the run bit for bit."""
    run = tmp_path / "run"
    process = FaultedProcess(train_argv(data, run), tmp_path, point, "pause")
    assert process.wait_until_paused()["point"] == point
    process.proc.send_signal(signal.SIGINT)
    process.release()
    faulted = process.finish()
    assert faulted.code == 130, faulted.err
    lines = faulted.err.strip().splitlines()
    assert len(lines) == 1, faulted.err
    match = INTERRUPTED.match(lines[0])
    assert match, lines[0]
    stopped, epoch, batch, n_batches = (int(g) for g in match.groups()[:4])
    assert (stopped, epoch, batch, n_batches) == (step, step // BATCHES + 1, step % BATCHES, BATCHES)
    assert Path(tmp_path / match.group(5)) == run / "last.npz"
    meta = load_checkpoint(run / "last.npz").meta
    assert (meta["epoch"], meta.get("batch", 0), meta["step"]) == (epoch - 1, batch, step)
    assert faulted.reported_epochs() == epoch - 1
    # The printed command, run as printed (from the folder the run was started in), finishes the run exactly.
    command = shlex.split(match.group(6))
    assert command[:2] == ["convnp", "train"]
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        capsys.readouterr()
        assert main(command[1:]) == 0
    finally:
        os.chdir(cwd)
    assert_resumed(capsys.readouterr().out, run, epoch - 1, batch)
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
    stream = io.StringIO()
    resumed = train_run(None, run, resume=True, stream=stream)
    assert_resumed(stream.getvalue(), run, meta["epoch"], meta.get("batch", 0))
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


class PoisonGradientAt:
    """Runs each step as the trainer would, then makes one gradient NaN at 1-based step ``step``: a gradient that
    goes non-finite while the loss stays finite (the loss check cannot catch it)."""

    def __init__(self, model, step: int):
        from convnp.parallel import DataParallel

        self.model, self.step, self.steps = model, step, 0
        self.inner = DataParallel(model, 1)

    def train_step(self, x, y):
        loss, correct, finite = self.inner.train_step(x, y)
        self.steps += 1
        if self.steps == self.step:
            name = sorted(self.model.gradients())[0]
            self.model.gradients()[name].flat[0] = np.nan
        return loss, correct, finite

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("skip", [0, 1])
def test_a_nonfinite_gradient_with_a_finite_loss_stops_or_is_skipped_without_an_update(skip):
    from convnp.optim import SGD

    x, y = tiny_data(huge=None)
    model = tiny_model()
    poison = PoisonGradientAt(model, step=9)  # epoch 2, batch 3 of 6

    class Weights(Callback):
        def on_batch_end(self, batch, logs):
            self.after = {k: v.copy() for k, v in model.parameters().items()}

    weights = Weights()
    trainer = Trainer(model, SGD(0.05), parallel=poison, skip_nonfinite=skip, callbacks=[weights])
    if not skip:
        with pytest.raises(TrainingDiverged, match=r"a gradient became NaN or infinite at step 9 \(epoch 2, batch 3 "
                                                   r"of 6\); try a lower learning rate \(now 0.05\) or "
                                                   r"--clip-grad-norm") as info:
            trainer.fit(x, y, epochs=2, batch_size=8, rng=np.random.default_rng(2))
        assert info.value.step == 9 and trainer.step == 8
        # No update from the poisoned step: the weights are those after step 8.
        assert same_arrays(model.parameters(), weights.after)
    else:
        history = trainer.fit(x, y, epochs=2, batch_size=8, rng=np.random.default_rng(2))
        assert [row["skipped"] for row in history] == [0, 1] and trainer.skipped_total == 1 and trainer.step == 12
        assert all(np.isfinite(v).all() for v in model.state_dict().values())


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
    assert_resumed(capsys.readouterr().out, run, 1)
    assert_same_run(run, reference)


def test_a_second_ctrl_c_stops_at_once():
    from convnp.optim import SGD
    from convnp.train.run import _stop_on_sigint

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("another SIGINT handler is installed; train_run leaves it alone")
    trainer = Trainer(tiny_model(), SGD(0.1))
    with _stop_on_sigint(trainer):
        # raise_signal runs the C handler before returning; the Python handler runs at the next call, here len().
        signal.raise_signal(signal.SIGINT)
        len(())
        assert trainer.stop_requested == "interrupted (Ctrl-C)"
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
            len(())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back as it was
