"""``convnp evaluate`` through ``main([...])``: a real checkpoint on real MNIST, and every way its inputs can be bad."""

import json
import shutil

import numpy as np
import pytest

from convnp.checkpoint import load_checkpoint
from convnp.cli.main import main
from convnp.train import evaluate

TRIPPED = []


def _tripwire():
    """Called only if someone unpickles a :class:`Tripwire`."""
    TRIPPED.append("unpickled")


class Tripwire:
    # Pickled as "call test_evaluate._tripwire()": loading it with allow_pickle=True would run that call.
    def __reduce__(self):
        return (_tripwire, ())


@pytest.fixture(scope="module")
def checkpoint(digits_checkpoint):
    """The shared trained notebook model (tests/conftest.py)."""
    return digits_checkpoint


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, captured.err
    assert err[0].startswith("convnp: error: ") and "Traceback" not in captured.err
    assert captured.out == ""
    return err[0]


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("CONVNP_DEBUG", raising=False)


# ---- real runs ---------------------------------------------------------------------------------------------------
@pytest.mark.mnist
def test_text_report_has_every_section(checkpoint, mnist, capsys):
    assert main(["evaluate", str(checkpoint)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"checkpoint: {checkpoint} (model notebook)"
    assert lines[1] == "data: mnist (test split), 10,000 images"
    accuracy = float(lines[2].removeprefix("accuracy: ").removesuffix("%"))
    assert 85.0 < accuracy <= 100.0  # 10,000 images, 2 epochs (conftest.py): far above chance (10%)
    assert lines[3].startswith("loss: ")

    start = lines.index("per class:") + 1
    assert lines[start].split() == ["class", "support", "precision", "recall", "f1"]
    rows = [line.split() for line in lines[start + 1 : start + 11]]
    assert [int(r[0]) for r in rows] == list(range(10))
    assert [int(r[1]) for r in rows] == np.bincount(mnist[3], minlength=10).tolist()

    start = lines.index("confusion matrix (rows: true class, columns: predicted class):") + 1
    assert lines[start].split() == ["true", "\\", "predicted", *map(str, range(10))]
    table = np.array([[int(v) for v in line.split()] for line in lines[start + 1 : start + 11]])  # (10, 11)
    assert table.shape == (10, 11)
    assert table[:, 0].tolist() == list(range(10))
    confusion = table[:, 1:]
    assert confusion.sum() == 10000
    assert np.trace(confusion) / 100 == pytest.approx(accuracy)


@pytest.mark.mnist
def test_json_matches_the_library_evaluate(checkpoint, mnist, capsys):
    assert main(["evaluate", str(checkpoint), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"checkpoint", "data", "split", "n_samples", "accuracy", "top5_accuracy", "loss",
                           "classes", "per_class", "confusion"}
    assert result["classes"] == [str(k) for k in range(10)]  # MNIST's classes are named by their digits
    assert [row["name"] for row in result["per_class"]] == result["classes"]
    assert result["accuracy"] <= result["top5_accuracy"] <= 1.0
    assert (result["checkpoint"], result["data"], result["split"]) == (str(checkpoint), "mnist", "test")

    _, _, x_test, y_test = mnist
    loaded = load_checkpoint(checkpoint)
    expected = evaluate(loaded.model, loaded.prepare(x_test[..., None]), y_test.astype(np.int64))
    assert result["accuracy"] == expected["accuracy"]
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-5)

    confusion = np.array(result["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 10000 == result["n_samples"]
    assert np.trace(confusion) / 10000 == result["accuracy"]
    assert [row["class"] for row in result["per_class"]] == list(range(10))
    assert [row["support"] for row in result["per_class"]] == confusion.sum(axis=1).tolist()
    for row in result["per_class"]:
        assert 0.0 <= row["precision"] <= 1.0 and 0.0 <= row["recall"] <= 1.0

    # The batch size bounds memory only; the figures do not move.
    assert main(["evaluate", str(checkpoint), "--json", "--batch-size", "333"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["confusion"] == result["confusion"] and again["accuracy"] == result["accuracy"]


@pytest.mark.mnist
def test_a_run_folder_evaluates_its_best_checkpoint(checkpoint, tmp_path, capsys):
    shutil.copy(checkpoint, tmp_path / "best.npz")
    assert main(["evaluate", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["checkpoint"] == str(tmp_path / "best.npz") and result["n_samples"] == 10000


@pytest.mark.mnist
def test_an_npz_train_split(checkpoint, mnist, tmp_path, capsys):
    _, _, x_test, y_test = mnist
    data = tmp_path / "digits.npz"
    np.savez(data, x=x_test[:300], y=y_test[:300])
    assert main(["evaluate", str(checkpoint), "--data", str(data), "--split", "train", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["data"] == str(data) and result["split"] == "train" and result["n_samples"] == 300
    assert np.array(result["confusion"]).sum(axis=1).tolist() == np.bincount(y_test[:300], minlength=10).tolist()


# ---- bad checkpoints ---------------------------------------------------------------------------------------------
def test_missing_checkpoint(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.npz")]) == 1
    line = _one_error_line(capsys)
    assert "nope.npz" in line and "no such checkpoint file" in line


def test_run_folder_without_checkpoint(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 1
    assert "run folder holds no checkpoint" in _one_error_line(capsys)


@pytest.mark.parametrize("content", [b"", np.random.default_rng(0).bytes(4096)], ids=["zero-bytes", "random-bytes"])
def test_damaged_checkpoint(tmp_path, capsys, content):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    assert main(["evaluate", str(path)]) == 1
    line = _one_error_line(capsys)
    assert str(path) in line and "is not a convnp checkpoint (not an .npz archive" in line


def test_tripwire_is_live(tmp_path):
    # Proves the pickle tests below can see an unpickling: loading with allow_pickle=True trips the wire.
    path = tmp_path / "evil.npz"
    np.savez(path, a=np.array([Tripwire()], dtype=object))
    with np.load(path, allow_pickle=True) as archive:
        archive["a"]
    assert TRIPPED == ["unpickled"]
    TRIPPED.clear()


def test_pickled_checkpoint_is_refused_unopened(tmp_path, capsys):
    path = tmp_path / "evil.npz"
    np.savez(path, a=np.array([Tripwire()], dtype=object))
    assert main(["evaluate", str(path)]) == 1
    line = _one_error_line(capsys)
    assert "pickled Python object array" in line and "refusing to load it" in line
    assert TRIPPED == []


# ---- bad data ----------------------------------------------------------------------------------------------------
@pytest.mark.mnist
def test_pickled_data_is_refused_unopened(checkpoint, tmp_path, capsys):
    data = tmp_path / "evil.npz"
    np.savez(data, x=np.array([Tripwire()], dtype=object), y=np.array([0]))
    assert main(["evaluate", str(checkpoint), "--data", str(data), "--split", "train"]) == 1
    line = _one_error_line(capsys)
    assert "holds Python objects (dtype=object), which convnp will not unpickle" in line
    assert TRIPPED == []


@pytest.mark.mnist
def test_images_of_the_wrong_size(checkpoint, tmp_path, capsys):
    data = tmp_path / "small.npz"
    np.savez(data, x=np.zeros((20, 8, 8), np.uint8), y=np.zeros(20, np.int64))
    assert main(["evaluate", str(checkpoint), "--data", str(data), "--split", "train"]) == 1
    line = _one_error_line(capsys)
    assert "the model takes images of shape (28, 28, 1) (H, W, C), got (8, 8, 1)" in line


@pytest.mark.mnist
def test_npz_without_a_test_split(checkpoint, tmp_path, capsys):
    data = tmp_path / "train_only.npz"
    np.savez(data, x=np.zeros((20, 28, 28), np.uint8), y=np.zeros(20, np.int64))
    assert main(["evaluate", str(checkpoint), "--data", str(data)]) == 1
    line = _one_error_line(capsys)
    assert "has no test split" in line and "--split train" in line


@pytest.mark.mnist
def test_labels_beyond_the_models_classes(checkpoint, tmp_path, capsys):
    data = tmp_path / "eleven.npz"
    np.savez(data, x=np.zeros((20, 28, 28), np.uint8), y=np.arange(20) % 12)
    assert main(["evaluate", str(checkpoint), "--data", str(data), "--split", "train"]) == 1
    line = _one_error_line(capsys)
    assert "labels go up to 11 (2 out of range)" in line and "predicts 10 classes (0-9)" in line


def _test_split_cases():
    """Name -> (arrays of an .npz whose test split is broken, a phrase its one line must hold)."""
    x, y = np.zeros((10, 28, 28), np.uint8), np.arange(10) % 10
    nan = np.zeros((10, 28, 28), np.float32)
    nan[4, 5, 6] = np.nan
    return {
        "NaN test images": (dict(x=x, y=y, x_test=nan, y_test=y), "x_test has 1 non-finite values (NaN or inf), "
                            "the first at index (4, 5, 6)"),
        "float test labels": (dict(x=x, y=y, x_test=x, y_test=y + 0.0), "y_test has dtype float64 but expected "
                              "integer class indices"),
        "test label count": (dict(x=x, y=y, x_test=x, y_test=y[:7]), "inconsistent numbers of samples: x_test has 10 "
                             "images but y_test has 7 labels"),
        "test images of rank 2": (dict(x=x, y=y, x_test=x[:, 0], y_test=y), "x_test has shape (10, 28) but expected "
                                  "(N, H, W) or (N, H, W, C)"),
        "test images of another size": (dict(x=x, y=y, x_test=x[:, :27], y_test=y), "x_test images have shape "
                                        "(27, 28, 1) but the training images (28, 28, 1)"),
        "negative test labels": (dict(x=x, y=y, x_test=x, y_test=y - 1), "y_test must be >= 0 (class indices), "
                                 "found -1 at index 0"),
    }


@pytest.mark.parametrize("case", list(_test_split_cases()))
def test_broken_test_split_is_refused_in_one_line(case, tmp_path, capsys):
    """The test split is read only by evaluate (and a run's final test): its faults get one line and exit 1 too,
    before any forward pass, with nothing written."""
    from convnp.checkpoint import save_checkpoint
    from convnp.models import notebook

    arrays, phrase = _test_split_cases()[case]
    data = tmp_path / "data.npz"
    np.savez(data, **arrays)
    checkpoint = save_checkpoint(tmp_path / "model.npz", notebook(rng=np.random.default_rng(0)))
    before = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
    assert main(["evaluate", str(checkpoint), "--data", str(data)]) == 1
    line = _one_error_line(capsys)
    assert f"{data}: " in line and phrase in line, line
    assert sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "expected a positive integer, got '0'"),
    (["--split", "valid"], "invalid choice"),
])
def test_bad_options_exit_2(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(tmp_path / "model.npz"), *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
