"""examples/sklearn_digits.py end to end: scikit-learn's 1,797 real 8x8 digits fetched from PyPI by pip (the wheel
downloaded, never installed or imported), checked and cached, written as an .npz with string class names, trained
with examples/tiny8.json through ``convnp train``, scored by ``convnp evaluate`` and named by ``convnp predict``.

The fixture downloads into a fresh cache folder, so every run really exercises the registry path (13 MB, a few
seconds); a second run of the script with pip pointed at a closed port then shows that the cache alone serves.
"""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convnp.cli.main import main
from convnp.inference import Classifier

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# What examples/sklearn_digits.py writes: 20% of the 1,797 images held out, rounded.
N_TRAIN, N_TEST = 1438, 359
# The README's command; 5 seeds of it scored 97.8-98.9% with `convnp evaluate` (best.npz) on these 359 images.
TRAIN_ARGS = ["--model", str(EXAMPLES / "tiny8.json"), "--epochs", "20", "--batch-size", "32"]
MIN_ACCURACY = 0.95


def load_example():
    """The example script as a module (it is not a package), for its helpers."""
    spec = importlib.util.spec_from_file_location("sklearn_digits", EXAMPLES / "sklearn_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(*args, env=None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(EXAMPLES / "sklearn_digits.py"), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"the example failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """``(folder, cache)``: the example's output (digits8x8.npz and 10 test PNGs), fetched into a new cache."""
    folder, cache = tmp_path_factory.mktemp("digits"), tmp_path_factory.mktemp("cache")
    done = run_example("--out", folder, "--cache", cache, "--pngs", 10)
    assert f"cache: {cache / 'sklearn-digits'}" in done.stdout
    assert f"{N_TRAIN} training and {N_TEST} test images of 8x8" in done.stdout
    return folder, cache


def test_the_example_writes_the_real_digits_with_named_classes(digits):
    folder, cache = digits
    example = load_example()
    cached = (cache / "sklearn-digits" / "digits.csv.gz").read_bytes()
    assert hashlib.sha256(cached).hexdigest() == example.MEMBER_SHA256
    with np.load(folder / "digits8x8.npz", allow_pickle=False) as archive:
        data = dict(archive)
    assert data["x"].shape == (N_TRAIN, 8, 8) and data["x_test"].shape == (N_TEST, 8, 8)
    assert data["x"].dtype == data["x_test"].dtype == np.uint8
    assert data["classes"].tolist() == NAMES and data["y"].dtype.kind == data["y_test"].dtype.kind == "U"
    x, y = np.concatenate([data["x"], data["x_test"]]), np.concatenate([data["y"], data["y_test"]])
    # Every one of the 17 levels 0..16 becomes round(v * 255 / 16); 0 and 255 are both used.
    assert set(np.unique(x).tolist()) <= {round(v * 255 / 16) for v in range(17)} and x.min() == 0 and x.max() == 255
    assert sorted(np.unique(y).tolist()) == sorted(NAMES)
    assert 170 <= min(np.sum(y == name) for name in NAMES)  # 174-183 images of each digit
    # The test split is the seeded 20%, each split in the file's order (the first image is a zero).
    train, test = example.split(1797, 0.2, 0)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 1797
    csv_x, csv_digits = example.parse(cached)
    np.testing.assert_array_equal(csv_x[test], data["x_test"])
    np.testing.assert_array_equal(np.array(NAMES)[csv_digits[train]], data["y"])
    assert csv_digits[0] == 0 and csv_digits[:10].tolist() == list(range(10))  # the csv's first row is a 0, then 1, ...


def test_a_second_run_reads_the_cache_without_pip(digits, tmp_path):
    _, cache = digits
    env = {**os.environ, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_NO_INDEX": "1"}  # any download fails
    done = run_example("--out", tmp_path, "--cache", cache, env=env)
    assert (tmp_path / "digits8x8.npz").is_file() and "refusing" not in done.stderr


def test_a_changed_file_is_refused(tmp_path, monkeypatch, capsys):
    example = load_example()
    with pytest.raises(ValueError, match=r"x has sha256 [0-9a-f]{64}, expected 09f66e6d.*; refusing it"):
        example._check(b"not the digits", "x")
    # A damaged cache is not used: the member is fetched again (here a stand-in) and replaces it.
    (tmp_path / "sklearn-digits").mkdir()
    (tmp_path / "sklearn-digits" / "digits.csv.gz").write_bytes(b"damaged")
    fetched = []
    monkeypatch.setattr(example, "download_member", lambda: fetched.append(1) or b"fresh")
    monkeypatch.setattr(example, "MEMBER_SHA256", hashlib.sha256(b"fresh").hexdigest())
    assert example.fetch(tmp_path) == b"fresh" and fetched == [1]
    assert (tmp_path / "sklearn-digits" / "digits.csv.gz").read_bytes() == b"fresh"
    assert "refusing it; fetching it again" in capsys.readouterr().err


def test_trains_evaluates_and_predicts_by_name(digits, tmp_path, capsys):
    folder, _ = digits
    npz, run = folder / "digits8x8.npz", tmp_path / "run"
    assert main(["train", "--data", str(npz), *TRAIN_ARGS, "--threads", "1", "--no-report", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(npz), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["classes"] == NAMES and result["accuracy"] > MIN_ACCURACY, result["accuracy"]

    pngs = sorted((folder / "digits8x8-png").glob("*.png"), key=lambda p: int(p.name.split("-")[0]))
    assert [p.name for p in pngs[:2]] == ["0-two.png", "1-two.png"] and len(pngs) == 10
    assert main(["predict", str(run), *map(str, pngs), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    truth = [p.stem.split("-")[1] for p in pngs]
    named = [entry["class"] for entry in entries]
    assert sum(n == t for n, t in zip(named, truth)) >= 9, list(zip(named, truth))
    assert all(entry["class"] == NAMES[entry["label"]] == entry["top_classes"][0] for entry in entries)
    # The PNGs hold the test images exactly: predict gives the probabilities of the arrays in the .npz.
    with np.load(npz, allow_pickle=False) as archive:
        x_test = archive["x_test"][:10, :, :, None]  # (10, 8, 8, 1)
    expected = Classifier.from_checkpoint(run).predict_proba(x_test)  # (10, 10)
    np.testing.assert_allclose([entry["probabilities"] for entry in entries], expected, rtol=1e-5, atol=1e-7)
