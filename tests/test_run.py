"""Whole training runs: the run folder, determinism, resume, checkpoints in a fresh process, run errors."""

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import SMALL_RUN, run_weights, same_arrays, small_run, without_time

from convnp.checkpoint import load_checkpoint
from convnp.cli.main import main
from convnp.train.callbacks import Callback
from convnp.train.config import TrainConfig
from convnp.train.run import train_run

pytestmark = pytest.mark.mnist


class EpochRecorder(Callback):
    """Notes which epochs (0-based) a run trained, and the weights after each."""

    def __init__(self):
        self.epochs, self.weights = [], []

    def on_epoch_end(self, epoch, logs):
        self.epochs.append(epoch)
        self.weights.append(self.trainer.model.state_dict())


def test_run_folder_contents(mnist, tmp_path):
    result = small_run(tmp_path, "run", 2)
    run = result.run_dir
    config = json.loads((run / "config.json").read_text())
    assert config["settings"]["epochs"] == 2 and config["settings"]["limit"] == 1200
    assert set(config["versions"]) >= {"convnp", "numpy", "python"}
    with open(run / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(0 <= float(r["val_accuracy"]) <= 1 for r in rows)
    assert float(rows[1]["loss"]) < float(rows[0]["loss"])
    assert (run / "best.npz").is_file() and (run / "last.npz").is_file()
    results = json.loads((run / "results.json").read_text())
    assert results["test"]["n_samples"] == 10000
    assert results["test"]["accuracy"] == pytest.approx(result.test["accuracy"])
    assert result.test["accuracy"] > 0.8
    checkpoint = load_checkpoint(run)  # a run folder resolves to best.npz
    best_epoch = 1 + int(np.argmax([float(r["val_accuracy"]) for r in rows]))  # the first of equal bests
    assert checkpoint.meta["epoch"] == best_epoch and checkpoint.meta["model_name"] == "notebook"
    assert load_checkpoint(run / "last.npz").meta["epoch"] == 2


def test_best_checkpoint_is_the_epoch_with_the_best_validation_accuracy(tmp_path):
    """best.npz holds the weights of the epoch whose val_accuracy was highest, also when a later epoch is worse.

    The validation accuracies are dictated (0.5, 0.9, 0.7) by a callback that runs before the checkpoint's; what is
    tested is only the checkpoint's choice and that it saves the weights of that epoch.
    """
    from convnp.models import notebook
    from convnp.optim import SGD
    from convnp.train import Trainer
    from convnp.train.callbacks import Checkpoint

    dictated = [0.5, 0.9, 0.7]

    class Dictate(EpochRecorder):
        def on_epoch_end(self, epoch, logs):
            logs["val_accuracy"] = dictated[epoch]
            super().on_epoch_end(epoch, logs)

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, 32)
    recorder = Dictate()
    trainer = Trainer(notebook(rng=np.random.default_rng(1)), SGD(0.05), threads=1,
                      callbacks=[recorder, Checkpoint(tmp_path)])
    trainer.fit(x, y, epochs=3, batch_size=16, rng=np.random.default_rng(2), validation_data=(x[:8], y[:8]))
    best, last = load_checkpoint(tmp_path / "best.npz"), load_checkpoint(tmp_path / "last.npz")
    assert best.meta["epoch"] == 2 and last.meta["epoch"] == 3
    assert same_arrays(best.model.state_dict(), recorder.weights[1])
    assert same_arrays(last.model.state_dict(), recorder.weights[2])
    assert not same_arrays(recorder.weights[1], recorder.weights[2])


@pytest.mark.parametrize("optimizer, schedule", [("momentum", "cosine"), ("adam", "step")])
def test_same_seed_gives_bitwise_identical_runs(mnist, tmp_path, optimizer, schedule):
    a = small_run(tmp_path, "a", 2, optimizer=optimizer, schedule=schedule, lr=None, warmup_epochs=0.5, step_epochs=1)
    b = small_run(tmp_path, "b", 2, optimizer=optimizer, schedule=schedule, lr=None, warmup_epochs=0.5, step_epochs=1)
    assert same_arrays(run_weights(a.run_dir), run_weights(b.run_dir))
    assert without_time(a.history) == without_time(b.history)
    c = small_run(tmp_path, "c", 2, optimizer=optimizer, schedule=schedule, lr=None, warmup_epochs=0.5, step_epochs=1,
             seed=1)
    assert not same_arrays(run_weights(a.run_dir), run_weights(c.run_dir))


def test_extending_a_finished_run_matches_a_longer_run(mnist, tmp_path):
    """With a constant rate, 1 epoch then ``--epochs 3`` on resume gives the bits of a 3-epoch run."""
    constant = dict(optimizer="adam", lr=None, schedule="constant")
    whole = small_run(tmp_path, "whole", 3, **constant)
    short = small_run(tmp_path, "short", 1, **constant)
    recorder = EpochRecorder()
    train_run(None, short.run_dir, resume=True, epochs=3, stream=io.StringIO(), callbacks=[recorder])
    assert recorder.epochs == [1, 2]  # the extension trained epochs 2 and 3 only, from the saved epoch 1
    assert same_arrays(run_weights(whole.run_dir), run_weights(short.run_dir))
    with open(short.run_dir / "metrics.csv", newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3]


def test_resume_after_a_stop_matches_uninterrupted_run(mnist, tmp_path, monkeypatch):
    """A run of 3 epochs stopped after epoch 2 (here: by an exception in a callback) resumes to the same bits."""
    settings = dict(optimizer="momentum", schedule="cosine", warmup_epochs=0.5)
    whole = small_run(tmp_path, "whole", 3, **settings)

    class Crash(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 1:
                raise KeyboardInterrupt  # after the checkpoint callback has written epoch 2

    config = TrainConfig(epochs=3, **{**SMALL_RUN, **settings})
    with pytest.raises(KeyboardInterrupt):
        train_run(config, tmp_path / "stopped", stream=io.StringIO(), callbacks=[Crash()])
    assert load_checkpoint(tmp_path / "stopped" / "last.npz").meta["epoch"] == 2
    assert not same_arrays(run_weights(whole.run_dir), run_weights(tmp_path / "stopped"))
    recorder, progress = EpochRecorder(), io.StringIO()
    resumed = train_run(None, tmp_path / "stopped", resume=True, stream=progress, callbacks=[recorder])
    assert recorder.epochs == [2]  # only the third epoch was trained: the first two came from last.npz
    assert "at epoch 3" in progress.getvalue()
    assert same_arrays(run_weights(whole.run_dir), run_weights(tmp_path / "stopped"))
    assert without_time(resumed.history) == without_time(whole.history)


def test_checkpoint_predicts_identically_in_a_fresh_process(mnist, tmp_path):
    result = small_run(tmp_path, "run", 1)
    checkpoint = load_checkpoint(result.run_dir / "last.npz")
    x = mnist[2][:50][..., None]
    np.save(tmp_path / "x.npy", x)
    here = checkpoint.model.predict(checkpoint.prepare(x))
    code = (
        "import sys, numpy as np; from convnp.checkpoint import load_checkpoint; "
        "c = load_checkpoint(sys.argv[1]); x = np.load(sys.argv[2]); "
        "np.save(sys.argv[3], c.model.predict(c.prepare(x)))"
    )
    subprocess.run([sys.executable, "-c", code, str(result.run_dir / "last.npz"), str(tmp_path / "x.npy"),
                    str(tmp_path / "out.npy")], check=True, timeout=120)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), here)


def test_cli_train_and_resume(mnist, tmp_path, capsys):
    out = tmp_path / "cli-run"
    argv = ["train", "--limit", "1000", "--epochs", "1", "--val-split", "0.2", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "epoch 1/1" in text and "val_acc" in text and "test accuracy:" in text
    assert main(argv) == 1  # the folder already holds a run
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--epochs", "2"]) == 0
    text = capsys.readouterr().out
    assert "resuming" in text and "epoch 2/2" in text and "epoch 1/2" not in text  # epoch 1 is not trained again
    assert load_checkpoint(out / "last.npz").meta["epoch"] == 2
    assert main(["train", "--resume", str(out), "--lr", "0.5", "--epochs", "3"]) == 1
    assert "lr=0.5 (the run has 0.02)" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing-here")]) == 1
    assert "not a run folder" in capsys.readouterr().err


def test_data_that_does_not_fit_the_model_is_refused_before_training(tmp_path, capsys):
    """The network is built for the data's images, so what is refused is an image too small for its pools."""
    path = tmp_path / "tiny.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 255, (20, 3, 3, 3), dtype=np.uint8), y=rng.integers(0, 10, 20))
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model 'notebook' cannot take input of shape (3, 3, 3)" in err[0]
    assert "at least 4x4 pixels" in err[0]
    assert not (tmp_path / "r" / "last.npz").exists()


def test_own_npz_data_trains(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = (rng.random((300, 28, 28)) * 60).astype(np.uint8)
    for k in range(3):  # a bright square whose position says the class
        x[y == k, 4 + 7 * k : 10 + 7 * k, 4:10] = 255
    path = tmp_path / "toy.npz"
    np.savez(path, x=x[:240], y=y[:240], x_test=x[240:], y_test=y[240:])
    assert main(["train", "--data", str(path), "--epochs", "3", "--batch-size", "16", "--out", str(tmp_path / "r")]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("test accuracy"))
    assert float(line.split(":")[1].split("%")[0]) > 90


def test_cli_model_recipe_fills_untyped_options(mnist, tmp_path, capsys):
    from convnp.models import RECIPES

    out = tmp_path / "lenet"
    # --epochs 5 is typed, so it beats the recipe's 10 (as a typed default value would); --lr is left to the recipe.
    assert main(["train", "--model", "lenet5", "--epochs", "5", "--limit", "300", "--val-split", "0.2",
                 "--out", str(out), "--patience", "1"]) == 0
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["model"] == "lenet5" and settings["epochs"] == 5
    assert settings["lr"] == RECIPES["lenet5"]["lr"] and settings["schedule"] == RECIPES["lenet5"]["schedule"]
    capsys.readouterr()
    assert main(["train", "--max-shift", "3", "--out", str(tmp_path / "x")]) == 1
    assert "--max-shift has no effect without --augment" in capsys.readouterr().err
