"""convnp train --init CHECKPOINT: fine-tuning a saved network (a run's, an imported one, a pretrained one by name)
on data that fits it, with a new optimizer; the run keeps the checkpoint's input preparation and class names."""

from __future__ import annotations

import json

import numpy as np
import pytest
from colour_model import NAMES, noisy, train_colour_model
from helpers import without_time

from convnp.checkpoint import load_checkpoint, save_checkpoint
from convnp.cli.main import main

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """A sprint of 32x32 colour pictures named by colour, trained to name them all (tests/colour_model.py)."""
    return train_colour_model(tmp_path_factory.mktemp("origin"))


def colours_npz(path, n, seed, names=None):
    rng = np.random.default_rng(seed)
    y = np.array(names or NAMES)[np.arange(n) % len(names or NAMES)]
    np.savez(path, x=noisy(y, rng), y=y, x_test=noisy(y[:24], rng), y_test=y[:24])
    return path


def weights(path) -> dict:
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files if k.startswith("model/")}


def test_fine_tuning_starts_from_the_checkpoint_and_keeps_its_preparation_and_names(origin, tmp_path, capsys):
    data = colours_npz(tmp_path / "more.npz", 96, seed=7)
    # A learning rate too small to move anything: the run must end where the checkpoint began.
    assert main(["train", "--init", str(origin), "--data", str(data), "--epochs", "1", "--lr", "1e-12",
                 "--threads", "1", "--no-report", "--out", str(tmp_path / "tuned")]) == 0
    out = capsys.readouterr().out
    assert "sprint (fine-tuning " in out
    before, after = weights(origin / "best.npz"), weights(tmp_path / "tuned" / "last.npz")  # a folder: its best
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-6, atol=1e-9)
    tuned, source = load_checkpoint(tmp_path / "tuned"), load_checkpoint(origin / "best.npz")
    assert tuned.meta["model_name"] == "sprint" and tuned.meta["classes"] == NAMES
    assert tuned.meta["preprocessing"] == source.meta["preprocessing"]  # not measured again on the new data
    assert json.loads((tmp_path / "tuned" / "results.json").read_text())["test"]["accuracy"] == 1.0
    # A fresh run of the same settings is somewhere else entirely.
    assert main(["train", "--model", "sprint", "--data", str(data), "--epochs", "1", "--lr", "1e-12",
                 "--threads", "1", "--no-report", "--out", str(tmp_path / "fresh")]) == 0
    fresh = weights(tmp_path / "fresh" / "last.npz")
    assert not np.allclose(fresh["model/0.weight"], before["model/0.weight"])


def test_a_bare_checkpoint_file_fine_tunes_and_the_run_resumes_bit_for_bit(origin, tmp_path):
    """A checkpoint outside a run folder (as convnp import writes one), and a fine-tuned run extended by --resume
    exactly as if it had run its epochs at once (a constant learning rate)."""
    source = load_checkpoint(origin / "last.npz")
    bare = tmp_path / "bare.npz"
    save_checkpoint(bare, source.model, meta={k: source.meta[k] for k in ("model_name", "classes", "preprocessing")})
    data = colours_npz(tmp_path / "more.npz", 96, seed=8)
    common = ["--init", str(bare), "--data", str(data), "--optimizer", "adam", "--lr", "0.001", "--schedule",
              "constant", "--threads", "1", "--no-report"]
    assert main(["train", *common, "--epochs", "2", "--out", str(tmp_path / "straight")]) == 0
    assert main(["train", *common, "--epochs", "1", "--out", str(tmp_path / "split")]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "2", "--no-report"]) == 0
    a, b = (weights(tmp_path / run / "last.npz") for run in ("straight", "split"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert without_time(load_checkpoint(tmp_path / "straight" / "last.npz").meta["history"]) == without_time(
        load_checkpoint(tmp_path / "split" / "last.npz").meta["history"])


def test_a_folder_is_brought_to_the_checkpoints_input(origin, tmp_path):
    """40x48 pictures: read at the network's 32x32 (cropped, not squashed), and config.json says so for --resume."""
    rng = np.random.default_rng(3)
    for i, name in enumerate(NAMES * 3):
        (tmp_path / "pics" / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(noisy([name], rng, size=48)[0, :40]).save(tmp_path / "pics" / name / f"{i}.png")
    assert main(["train", "--init", str(origin), "--data", str(tmp_path / "pics"), "--epochs", "1",
                 "--threads", "1", "--no-report", "--out", str(tmp_path / "run")]) == 0
    settings = json.loads((tmp_path / "run" / "config.json").read_text())["settings"]
    assert (settings["image_height"], settings["image_width"], settings["channels"]) == (32, 32, 3)
    assert load_checkpoint(tmp_path / "run").meta["classes"] == NAMES


@pytest.mark.parametrize("argv, message", [
    (["--model", "best"], "model 'best' and init "),
    (["--data", "WRONG_NAMES"], "names its classes ['black', 'blue', 'brown'"),
    (["--data", "WRONG_SHAPE"], "takes images of shape (32, 32, 3)"),
])
def test_what_cannot_be_fine_tuned_is_one_line(origin, tmp_path, capsys, argv, message):
    rng = np.random.default_rng(0)
    wrong_names = tmp_path / "names.npz"
    np.savez(wrong_names, x=noisy(np.array(NAMES[:3]), rng), y=np.array(["cat", "dog", "emu"]))
    wrong_shape = tmp_path / "shape.npz"
    np.savez(wrong_shape, x=np.zeros((4, 8, 8, 3), np.uint8), y=np.array([0, 1, 2, 3]))
    argv = [{"WRONG_NAMES": str(wrong_names), "WRONG_SHAPE": str(wrong_shape)}.get(a, a) for a in argv]
    code = main(["train", "--init", str(origin), *argv, "--epochs", "1", "--no-report", "--out",
                 str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run" / "last.npz").exists()
