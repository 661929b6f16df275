"""Data augmentation during training: the Trainer hook, the run's fourth Generator, fill value, determinism, resume,
learning on MNIST, and the command-line flags."""

import io
import json
import re

import numpy as np
import pytest
from helpers import SMALL_RUN, run_weights, same_arrays, small_run, without_time

from convnp.checkpoint import load_checkpoint
from convnp.cli.main import build_parser, main
from convnp.data.augment import Augment
from convnp.data.transforms import Standardize
from convnp.models import notebook
from convnp.optim import SGD
from convnp.train import Callback, Trainer
from convnp.train.config import TrainConfig
from convnp.train.run import make_augment, train_run

AUGMENTED = dict(augment=True, max_shift=2.0, max_rotation=12.0, scale_min=0.9, scale_max=1.1)






# ------------------------------------------------------------------------------------------------------------------
# Without MNIST: the Trainer hook, the Generators, the fill value
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**63 + 7])
def test_a_fourth_spawned_generator_leaves_the_first_three_unchanged(seed):
    """train_run spawns 4 children where it used to spawn 3: runs without augmentation keep their bits."""
    three = np.random.SeedSequence(seed).spawn(3)
    four = np.random.SeedSequence(seed).spawn(4)
    for old, new in zip(three, four):
        assert old.spawn_key == new.spawn_key
        a, b = np.random.default_rng(old), np.random.default_rng(new)
        np.testing.assert_array_equal(a.random(8), b.random(8))
    assert four[3].spawn_key not in [s.spawn_key for s in three]


class _Recorder:
    """An augmentation that records what it was given and marks the batch, so its use can be seen."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, rng):
        self.calls.append((x.shape, rng))
        return x + np.asarray(rng.uniform(-1e-3, 1e-3), dtype=x.dtype)


def test_trainer_augments_every_training_batch_and_nothing_else():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 28, 28, 1)).astype(np.float32), rng.integers(0, 10, 40)
    x_before = x.copy()
    augment, augment_rng = _Recorder(), np.random.default_rng(1)
    trainer = Trainer(notebook(rng=np.random.default_rng(2)), SGD(0.01), threads=1, augment=augment,
                      augment_rng=augment_rng)
    trainer.fit(x, y, epochs=2, batch_size=16, rng=np.random.default_rng(3), validation_data=(x[:8], y[:8]))
    # 40 images in batches of 16: 16, 16, 8 per epoch; validation (8 images) is never augmented.
    assert [shape[0] for shape, _ in augment.calls] == [16, 16, 8] * 2
    assert all(r is augment_rng for _, r in augment.calls)
    np.testing.assert_array_equal(x, x_before)  # the training set itself is untouched


def test_trainer_checks_the_augmentation_arguments():
    model = notebook(rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="Trainer: augment needs augment_rng, a numpy.random.Generator"):
        Trainer(model, SGD(0.1), augment=Augment())
    with pytest.raises(TypeError, match="Trainer: augment must be a callable"):
        Trainer(model, SGD(0.1), augment="shift", augment_rng=np.random.default_rng(0))
    bad = Trainer(model, SGD(0.1), threads=1, augment=lambda x, rng: x[:, :-1], augment_rng=np.random.default_rng(0))
    x, y = np.zeros((4, 28, 28, 1), np.float32), np.zeros(4, dtype=int)
    with pytest.raises(ValueError, match=r"augment must return an array of the batch's shape \(4, 28, 28, 1\)"):
        bad.fit(x, y, epochs=1, batch_size=4, rng=np.random.default_rng(0))


def test_the_fill_is_a_blank_pixel_standardised():
    standardize = Standardize(1 / 255, [0.1307], [0.3081])
    augment = make_augment(TrainConfig(augment=True, elastic_alpha=34.0, elastic_sigma=4.0), standardize, np.float32)
    blank = standardize(np.zeros((1, 2, 2, 1), np.uint8), np.float32)
    assert augment.fill == float(blank[0, 0, 0, 0]) == pytest.approx(-0.1307 / 0.3081, rel=1e-6)
    assert augment.get_config()["elastic"] == [34.0, 4.0] and augment.scale_range == (0.9, 1.1)
    # Shifting a standardised blank image leaves it blank: the uncovered band gets the same value.
    shifted = augment(np.repeat(blank, 3, axis=0), np.random.default_rng(0))
    np.testing.assert_allclose(shifted, blank[0, 0, 0, 0], rtol=1e-6)
    assert make_augment(TrainConfig(), standardize, np.float32) is None
    assert make_augment(TrainConfig(augment=True), standardize, np.float32).elastic is None  # elastic_alpha 0: off


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"max_shift": -1.0}, "max_shift must be a finite number >= 0, got -1.0"),
        ({"max_rotation": float("nan")}, "max_rotation must be a finite number >= 0, got nan"),
        ({"scale_min": 1.2, "scale_max": 0.8}, "0 < scale_min <= scale_max, got scale_min=1.2, scale_max=0.8"),
        ({"scale_min": 0.0}, "0 < scale_min <= scale_max, got scale_min=0.0"),
        ({"elastic_alpha": -3.0}, "elastic_alpha must be a finite number >= 0, got -3.0"),
        ({"elastic_sigma": 0.0}, "elastic_sigma must be a finite number > 0, got 0.0"),
        ({"augment": "yes"}, "augment must be True or False, got 'yes'"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\), got 1.0"),
        ({"schedule": "triangle"}, "schedule must be one of .*'onecycle'.*, got 'triangle'"),
    ],
)
def test_train_config_refuses_bad_settings(overrides, message):
    with pytest.raises(ValueError, match="TrainConfig: .*" + message):
        TrainConfig(**overrides)


def test_train_config_round_trips_the_new_settings():
    config = TrainConfig(augment=True, max_shift=3.0, elastic_alpha=30.0, label_smoothing=0.1, schedule="onecycle")
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    # A config.json written before these settings existed still loads, with augmentation and smoothing off.
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("augment", "label_smoothing", "max_shift")}
    assert TrainConfig.from_dict(old) == TrainConfig()


# ------------------------------------------------------------------------------------------------------------------
# Command line, parsing only
# ------------------------------------------------------------------------------------------------------------------


def _parsed_config(argv):
    from convnp.cli.train import typed_settings

    return TrainConfig(**typed_settings(build_parser().parse_args(["train", *argv])))


def test_cli_flags_map_onto_the_config():
    config = _parsed_config(["--augment", "--max-shift", "3", "--max-rotation", "15", "--scale-range", "0.8", "1.25",
                             "--elastic", "34", "4.5", "--label-smoothing", "0.1", "--schedule", "onecycle"])
    assert (config.augment, config.max_shift, config.max_rotation) == (True, 3.0, 15.0)
    assert (config.scale_min, config.scale_max, config.elastic_alpha, config.elastic_sigma) == (0.8, 1.25, 34.0, 4.5)
    assert config.label_smoothing == 0.1 and config.schedule == "onecycle"
    assert _parsed_config([]) == TrainConfig()  # no flags: every default
    assert _parsed_config(["--augment"]).augment_settings["elastic"] is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--augment", "--max-shift", "-1"], "argument --max-shift: expected a number >= 0, got '-1'"),
        (["--augment", "--max-rotation", "ten"], "argument --max-rotation: expected a number >= 0, got 'ten'"),
        (["--augment", "--scale-range", "1.2", "0.8"], "argument --scale-range: expected MIN <= MAX, got MIN=1.2"),
        (["--augment", "--scale-range", "0", "1"], "argument --scale-range: expected a positive finite number"),
        (["--augment", "--scale-range", "0.9"], "argument --scale-range: expected 2 arguments"),
        (["--augment", "--elastic", "34", "0"], "argument --elastic: expected SIGMA > 0, got 0"),
        (["--label-smoothing", "1"], r"argument --label-smoothing: expected a number in \[0, 1\), got '1'"),
        (["--schedule", "triangle"], "argument --schedule: invalid choice: 'triangle'"),
    ],
)
def test_cli_bad_values_exit_2_with_one_clear_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["train", *argv, "--out", str(tmp_path / "r")])
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("convnp train: error: ")
    assert re.search(message, last), last


def test_cli_augmentation_settings_without_augment_are_refused(capsys, tmp_path):
    assert main(["train", "--max-shift", "3", "--elastic", "34", "4", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["convnp: error: --max-shift and --elastic have no effect without --augment; "
                   "add --augment to train on augmented batches"]
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------------------------------
# Whole runs on MNIST
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.mnist
def test_augmented_runs_are_deterministic_differ_from_plain_and_still_learn(mnist, tmp_path):
    a = small_run(tmp_path, "a", 3, **AUGMENTED)
    b = small_run(tmp_path, "b", 3, **AUGMENTED)
    assert same_arrays(run_weights(a.run_dir), run_weights(b.run_dir)) and without_time(a.history) == without_time(b.history)
    plain = small_run(tmp_path, "plain", 3)
    assert not same_arrays(run_weights(a.run_dir), run_weights(plain.run_dir))
    # The split and the initial weights do not depend on augmentation: only the training batches differ.
    assert a.history[0]["loss"] != plain.history[0]["loss"]
    losses = [row["loss"] for row in a.history]
    assert losses == sorted(losses, reverse=True)
    assert a.history[-1]["val_accuracy"] > 0.75 and a.test["accuracy"] > 0.75, (a.history, a.test)
    seeded = small_run(tmp_path, "seed1", 1, seed=1, **AUGMENTED)
    assert seeded.history[0]["loss"] != a.history[0]["loss"]


@pytest.mark.mnist
def test_resume_after_a_stop_matches_uninterrupted_augmented_run(mnist, tmp_path):
    """3 epochs with augmentation (elastic too), stopped after epoch 2, resumed: the same bits as in one go."""
    settings = dict(optimizer="momentum", schedule="onecycle", warmup_epochs=0.5, label_smoothing=0.1,
                    elastic_alpha=34.0, elastic_sigma=4.0, **AUGMENTED)
    whole = small_run(tmp_path, "whole", 3, **settings)

    class Crash(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 1:
                raise KeyboardInterrupt  # after the checkpoint callback has written epoch 2

    config = TrainConfig(epochs=3, **{**SMALL_RUN, **settings})
    with pytest.raises(KeyboardInterrupt):
        train_run(config, tmp_path / "stopped", stream=io.StringIO(), callbacks=[Crash()])
    checkpoint = load_checkpoint(tmp_path / "stopped" / "last.npz")
    assert checkpoint.meta["epoch"] == 2 and "augment_rng_state" in checkpoint.meta
    assert checkpoint.meta["train_config"]["elastic_alpha"] == 34.0
    assert checkpoint.meta["augment"]["elastic"] == [34.0, 4.0] and checkpoint.meta["augment"]["fill"] < 0
    assert not same_arrays(run_weights(whole.run_dir), run_weights(tmp_path / "stopped"))

    class Epochs(Callback):
        trained = []

        def on_epoch_end(self, epoch, logs):
            self.trained.append(epoch)

    resumed = train_run(None, tmp_path / "stopped", resume=True, stream=io.StringIO(), callbacks=[Epochs()])
    assert Epochs.trained == [2]  # only the third epoch was trained: the first two came from last.npz
    assert same_arrays(run_weights(whole.run_dir), run_weights(tmp_path / "stopped"))
    assert without_time(resumed.history) == without_time(whole.history)
    settings_json = json.loads((tmp_path / "stopped" / "config.json").read_text())["settings"]
    assert settings_json["augment"] is True and settings_json["max_rotation"] == 12.0


@pytest.mark.mnist
def test_cli_trains_with_augmentation_and_resume_refuses_other_settings(mnist, tmp_path, capsys):
    out = tmp_path / "cli-run"
    argv = ["train", "--limit", "600", "--epochs", "1", "--val-split", "0.2", "--out", str(out), "--augment",
            "--max-shift", "3", "--scale-range", "0.8", "1.2", "--elastic", "30", "5", "--label-smoothing", "0.1",
            "--schedule", "onecycle"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "augmentation Augment(max_shift=3.0" in text and "label smoothing 0.1" in text and "test accuracy:" in text
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert (settings["augment"], settings["max_shift"], settings["scale_min"], settings["scale_max"]) == (
        True, 3.0, 0.8, 1.2)
    assert (settings["elastic_alpha"], settings["elastic_sigma"], settings["label_smoothing"]) == (30.0, 5.0, 0.1)
    assert main(["train", "--resume", str(out), "--augment", "--max-shift", "2.5", "--epochs", "2"]) == 1
    assert "max_shift=2.5 (the run has 3.0)" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--augment", "--max-shift", "3", "--epochs", "2"]) == 0
    assert load_checkpoint(out / "last.npz").meta["epoch"] == 2
