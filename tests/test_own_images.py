"""Issue 19's acceptance, end to end on a folder the test makes: 32x32 colour pictures of 10 named classes (a shape
and a colour each, on a noisy background), trained with the zoo's sprint and best, then named by evaluate,
predict --json and the web page; and resumed bit for bit from its folder cache.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import same_arrays, without_time

from convnp.checkpoint import load_checkpoint
from convnp.cli.main import main

Image = pytest.importorskip("PIL.Image")

# Ten classes, each a shape in a colour; sorted, these are labels 0..9.
CLASSES = {
    "amber disc": ("disc", (240, 170, 20)), "blue bar": ("bar", (40, 70, 230)), "cyan ring": ("ring", (40, 210, 220)),
    "green cross": ("cross", (30, 190, 50)), "grey square": ("square", (150, 150, 150)),
    "magenta disc": ("disc", (220, 40, 200)), "red square": ("square", (225, 35, 35)),
    "violet bar": ("bar", (120, 50, 170)), "white cross": ("cross", (250, 250, 250)),
    "yellow ring": ("ring", (240, 235, 60)),
}


def picture(kind: str, rgb, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 picture: a dark noisy background with ``kind`` drawn in ``rgb`` near the centre."""
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = size / 2 + rng.integers(-3, 4, 2)
    dy, dx = yy - cy, xx - cx
    r = 9
    mask = {"disc": dy**2 + dx**2 < r**2, "square": np.maximum(abs(dy), abs(dx)) < r - 2,
            "bar": (abs(dy) < 3) & (abs(dx) < r), "ring": abs(np.hypot(dy, dx) - r + 2) < 2,
            "cross": ((abs(dy) < 2) & (abs(dx) < r)) | ((abs(dx) < 2) & (abs(dy) < r))}[kind]
    x = rng.normal(40, 15, (size, size, 3))
    x[mask] = np.array(rgb) + rng.normal(0, 10, (int(mask.sum()), 3))
    return np.clip(x, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """``train/`` (30 a class) and ``test/`` (8 a class), one sub-folder per class name, PNG and JPEG mixed."""
    root = tmp_path_factory.mktemp("own") / "pictures"
    rng = np.random.default_rng(19)
    for split, n in (("train", 30), ("test", 8)):
        for name, (kind, rgb) in CLASSES.items():
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                suffix = ".jpg" if i % 5 == 4 else ".png"
                Image.fromarray(picture(kind, rgb, rng)).save(root / split / name / f"{i}{suffix}", quality=95)
    return root


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CONVNP_DATA", str(tmp_path_factory.mktemp("cache")))


def train(folder, out, model: str, epochs: int, *extra: str) -> None:
    argv = ["train", "--data", str(folder), "--model", model, "--epochs", str(epochs), "--batch-size", "30",
            "--threads", "1", "--no-report", "--out", str(out), *extra]
    assert main(argv) == 0


@pytest.mark.parametrize("model, epochs, least", [("sprint", 3, 0.9), ("best", 2, 0.5)])
def test_a_colour_folder_of_ten_named_classes_trains_and_every_tool_names_them(folder, tmp_path, capsys, model,
                                                                               epochs, least):
    run = tmp_path / model
    train(folder, run, model, epochs, *(["--optimizer", "adam", "--lr", "0.003"] if model == "sprint" else []))
    checkpoint = load_checkpoint(run / "last.npz")
    names = sorted(CLASSES)
    assert checkpoint.meta["classes"] == names and tuple(checkpoint.model.input_shape) == (32, 32, 3)
    results = json.loads((run / "results.json").read_text())["test"]
    assert results["n_samples"] == 80 and results["accuracy"] >= least  # an easy task: chance is 10%

    capsys.readouterr()
    assert main(["evaluate", str(run / "last.npz"), "--data", str(folder), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["classes"] == names and [row["name"] for row in evaluated["per_class"]] == names
    assert evaluated["accuracy"] == pytest.approx(results["accuracy"]) and "top5_accuracy" in evaluated

    files = [folder / "test" / name / "0.png" for name in names]
    assert main(["predict", str(run / "last.npz"), *map(str, files), "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert [a["class"] for a in answers] == [names[a["label"]] for a in answers]
    if model == "sprint":  # trained to >= 90%: the ten pictures are named right, by name
        assert sum(a["class"] == name for a, name in zip(answers, names)) >= 9

    from fastapi.testclient import TestClient

    from convnp.web.app import create_app

    with TestClient(create_app(run / "last.npz")) as client:
        health = client.get("/api/health").json()
        assert health["classes"] == names
        for file, answer in zip(files[:3], answers):
            reply = client.post("/api/predict", files={"file": (file.name, file.read_bytes(), "image/png")})
            assert reply.status_code == 200, reply.text
            body = reply.json()
            assert body["class"] == answer["class"] and body["top"][0]["class"] == answer["class"]


def test_a_folder_run_resumes_bit_for_bit_from_its_cache(folder, tmp_path):
    """Two epochs straight, and one epoch then --resume for the second (the folder read from its cache the second
    time, with the photo augmentations drawing from the saved Generator): the same weights and history. A constant
    learning rate, so that a one-epoch run extended to two follows the two-epoch run's schedule."""
    augment = ["--hflip", "--crop-padding", "2", "--brightness", "0.1", "--optimizer", "adam", "--lr", "0.003",
               "--schedule", "constant"]
    train(folder, tmp_path / "straight", "sprint", 2, *augment)
    train(folder, tmp_path / "split", "sprint", 1, *augment)
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "2", "--no-report"]) == 0
    a, b = (load_checkpoint(tmp_path / run / "last.npz") for run in ("straight", "split"))
    with np.load(tmp_path / "straight" / "last.npz") as x, np.load(tmp_path / "split" / "last.npz") as y:
        assert same_arrays({k: x[k] for k in x.files if k != "__meta__"}, {k: y[k] for k in y.files if k != "__meta__"})
    assert without_time(a.meta["history"]) == without_time(b.meta["history"])
