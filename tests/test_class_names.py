"""Named classes from the data to every output: .npz string labels and ``classes`` arrays, the checkpoint's
``"classes"`` entry, and what ``evaluate``, ``predict``, the server and the report show."""

import json
import os

import numpy as np
import pytest

from convnp.checkpoint import load_checkpoint, save_checkpoint
from convnp.cli.main import main
from convnp.data import load_npz
from convnp.data.datasets import Dataset, load_dataset
from convnp.errors import DataError
from convnp.inference import Classifier
from convnp.layers import Dense, Flatten
from convnp.metrics import accuracy, top_k_accuracy
from convnp.sequential import Sequential

COLOURS = np.array(["red", "green", "blue", "grey"])  # sorted: blue, green, grey, red
SORTED = sorted(COLOURS.tolist())
RGB = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220), "grey": (128, 128, 128)}


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("CONVNP_DEBUG", raising=False)


def colour_images(names: np.ndarray, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 image per name: its colour plus noise, shape ``(N, size, size, 3)``."""
    base = np.array([RGB[str(n)] for n in names], dtype=np.float64)[:, None, None, :]  # (N, 1, 1, 3)
    noise = rng.normal(0, 20, (len(names), size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def colour_npz(tmp_path_factory):
    """An .npz of 32x32x3 images labelled by colour name, with a test split."""
    rng = np.random.default_rng(19)
    folder = tmp_path_factory.mktemp("colours")
    y, y_test = COLOURS[rng.integers(0, 4, 96)], COLOURS[np.arange(24) % 4]
    path = folder / "colours.npz"
    np.savez(path, x=colour_images(y, rng), y=y, x_test=colour_images(y_test, rng), y_test=y_test)
    return path


@pytest.fixture(scope="module")
def colour_run(colour_npz, tmp_path_factory):
    """A run folder: --model sprint trained for one epoch on the colour .npz."""
    run = tmp_path_factory.mktemp("colour-run") / "run"
    argv = ["train", "--data", str(colour_npz), "--model", "sprint", "--epochs", "1", "--threads", "1",
            "--no-report", "--out", str(run)]
    assert main(argv) == 0
    return run


# ---- data in --------------------------------------------------------------------------------------------------------
def test_string_labels_are_numbered_in_sorted_order(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4, 4), np.uint8), y=np.array(["dog", "cat", "dog"]))
    x, y, classes = load_npz(tmp_path / "d.npz", return_classes=True)
    assert x.shape == (3, 4, 4, 1) and y.dtype == np.int64
    assert classes == ["cat", "dog"] and y.tolist() == [1, 0, 1]
    assert load_npz(tmp_path / "d.npz")[1].tolist() == [1, 0, 1]  # the two-value form is unchanged


def test_a_classes_array_names_integer_labels_and_orders_string_ones(tmp_path):
    x = np.zeros((3, 5, 5, 3), np.float32)
    np.savez(tmp_path / "ints.npz", x=x, y=np.array([2, 0, 1]), classes=np.array(["zebra", "ant", "moth"]))
    data = load_dataset(str(tmp_path / "ints.npz"))
    assert data.classes == ["zebra", "ant", "moth"] and data.y_train.tolist() == [2, 0, 1] and data.n_classes == 3
    np.savez(tmp_path / "names.npz", x=x, y=np.array(["moth", "zebra", "moth"]), classes=np.array(["zebra", "moth"]))
    _, y, classes = load_npz(tmp_path / "names.npz", return_classes=True)
    assert classes == ["zebra", "moth"] and y.tolist() == [1, 0, 1]


def test_unnamed_integer_labels_are_named_by_their_numbers(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 6, 6), np.uint8), y=np.array([0, 2, 2, 0]),
             x_test=np.zeros((2, 6, 6), np.uint8), y_test=np.array([3, 1]))
    assert load_dataset(str(tmp_path / "d.npz")).classes == ["0", "1", "2", "3"]
    assert Dataset("d", np.zeros((2, 1, 1, 1)), np.array([0, 4])).classes == ["0", "1", "2", "3", "4"]
    assert Dataset("d", np.zeros((2, 1, 1, 1)), np.array([0, 1]), classes=["a", "b"]).class_names(4) == \
        ["a", "b", "2", "3"]


def test_the_test_split_uses_the_training_names(tmp_path):
    x = np.zeros((4, 6, 6, 3), np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.array(["b", "a", "c", "a"]), x_test=x[:2], y_test=np.array(["c", "b"]))
    data = load_dataset(str(tmp_path / "d.npz"))
    assert data.classes == ["a", "b", "c"] and data.y_test.tolist() == [2, 1]


def test_a_test_label_unknown_to_training_is_refused_in_one_line(tmp_path, capsys):
    x = np.zeros((4, 28, 28), np.uint8)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=np.array(["b", "a", "b", "a"]), x_test=x[:2], y_test=np.array(["a", "zebra"]))
    with pytest.raises(DataError, match=r"y_test holds the label 'zebra' \(first at index 1\), which is not one of "
                                        r"the 2 classes \['a', 'b'\]"):
        load_dataset(str(path))
    assert main(["train", "--data", str(path), "--epochs", "1", "--no-report", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'zebra'" in err and not (tmp_path / "run").exists()


class Tripwire:
    """Unpickling it creates the folder ``marker`` (``os.mkdir`` is pickled by reference, so it really runs)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_an_object_array_of_classes_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.zeros((2, 4, 4), np.uint8), y=np.array([0, 1]),
             classes=np.array([Tripwire(tmp_path / "PWNED"), "b"], dtype=object))
    with pytest.raises(DataError, match=r"array 'classes' holds Python objects \(dtype=object\), which convnp will "
                                        "not unpickle"):
        load_npz(path)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("arrays, match", [
    (dict(y=np.array([0, 3]), classes=np.array(["a", "b"])), r"y holds the label 3 \(index 1\), but only 2 classes"),
    (dict(y=np.array([0, 1]), classes=np.array([1, 2])), "classes has dtype int64 but expected strings"),
    (dict(y=np.array([0, 1]), classes=np.array(["a", "a"])), "classes names 'a' more than once"),
    (dict(y=np.array([0, 1]), classes=np.array(["a", ""])), "classes names class 1 with an empty string"),
    (dict(y=np.array([0, 1]), classes=np.array([["a", "b"]])), r"classes has shape \(1, 2\) but expected \(K,\)"),
    (dict(y=np.array([True, False])), "y has dtype bool but expected integer class indices or class names"),
])
def test_bad_names_are_refused(tmp_path, arrays, match):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 4, 4), np.uint8), **arrays)
    with pytest.raises(DataError, match=match):
        load_npz(tmp_path / "d.npz")


def test_bytes_names_are_read_as_text(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.array([b"yes", b"no"]))
    _, y, classes = load_npz(tmp_path / "d.npz", return_classes=True)
    assert classes == ["no", "yes"] and y.tolist() == [1, 0]


def test_standardize_is_per_channel_for_colour(colour_npz):
    from convnp.data.transforms import Standardize

    x = load_dataset(str(colour_npz)).x_train  # (N, 32, 32, 3)
    standardize = Standardize.fit(x)
    assert len(standardize.mean) == 3 and len(set(standardize.mean)) == 3
    out = standardize(x, np.float64)
    assert np.allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-6) and np.allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-6)


def test_top_k_accuracy():
    scores = np.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])  # (3, 3)
    y = np.array([2, 0, 1])
    assert top_k_accuracy(scores, y, 1) == accuracy(scores, y) == pytest.approx(1 / 3)
    # Row 2's top two are classes 2 and 0: the tie 0.2/0.2 keeps the lower class, so its label 1 is missed.
    assert top_k_accuracy(scores, y, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(scores, np.array([2, 0, 0]), 2) == pytest.approx(1.0)
    assert top_k_accuracy(scores, y, 3) == 1.0
    with pytest.raises(ValueError, match="k must be between 1 and the 3 classes, got 4"):
        top_k_accuracy(scores, y, 4)


# ---- the checkpoint and every output ------------------------------------------------------------------------------
def test_training_stores_the_names_and_resume_keeps_them(colour_run, colour_npz, tmp_path):
    checkpoint = load_checkpoint(colour_run / "last.npz")
    assert checkpoint.meta["classes"] == SORTED
    assert Classifier.from_checkpoint(colour_run).class_names == tuple(SORTED)
    resumed = tmp_path / "resumed"
    import shutil

    shutil.copytree(colour_run, resumed)
    assert main(["train", "--resume", str(resumed), "--epochs", "2", "--threads", "1", "--no-report"]) == 0
    again = load_checkpoint(resumed / "last.npz")
    assert again.meta["epoch"] == 2 and again.meta["classes"] == SORTED


def test_evaluate_names_the_classes(colour_run, colour_npz, capsys):
    assert main(["evaluate", str(colour_run), "--data", str(colour_npz), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["classes"] == SORTED and [row["name"] for row in result["per_class"]] == SORTED
    assert "top5_accuracy" not in result  # 4 classes: top-5 would always be 100%
    assert main(["evaluate", str(colour_run), "--data", str(colour_npz)]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("per class:") + 1
    assert [line.split()[0] for line in lines[start + 1 : start + 5]] == SORTED
    start = lines.index("confusion matrix (rows: true class, columns: predicted class):") + 1
    assert lines[start].split() == ["true", "\\", "predicted", *SORTED]
    assert not any(line.startswith("top-5") for line in lines)


def test_evaluate_renumbers_data_named_in_another_order(colour_run, colour_npz, tmp_path, capsys):
    with np.load(colour_npz) as archive:
        arrays = dict(archive)
    reordered = ["red", "grey", "green", "blue"]
    index = {n: i for i, n in enumerate(reordered)}
    np.savez(tmp_path / "reordered.npz", x=arrays["x_test"], y=np.array([index[n] for n in arrays["y_test"]]),
             classes=np.array(reordered))
    assert main(["evaluate", str(colour_run), "--data", str(colour_npz), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(colour_run), "--data", str(tmp_path / "reordered.npz"), "--split", "train",
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["confusion"] == expected["confusion"] and got["accuracy"] == expected["accuracy"]
    np.savez(tmp_path / "other.npz", x=arrays["x_test"], y=np.zeros(24, np.int64), classes=np.array(["cyan"]))
    assert main(["evaluate", str(colour_run), "--data", str(tmp_path / "other.npz"), "--split", "train"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "class 'cyan' is not one of the checkpoint's 4 classes" in err


def test_predict_names_the_classes(colour_run, tmp_path, capsys):
    rng = np.random.default_rng(5)
    files = []
    for name in ("red", "blue"):
        files.append(str(tmp_path / f"{name}.npy"))
        np.save(files[-1], colour_images(np.array([name]), rng)[0].astype(np.float32))  # (32, 32, 3)
    assert main(["predict", str(colour_run), *files, "--json", "--top", "3"]) == 0
    results = json.loads(capsys.readouterr().out)
    for r in results:
        assert r["class"] == SORTED[r["label"]]
        assert r["top_classes"] == [SORTED[k] for k, _ in r["top"]] and r["top_classes"][0] == r["class"]
    assert main(["predict", str(colour_run), *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    for line, r in zip(lines, results):
        assert line.startswith(f"{r['file']}: {r['class']}  (p=")
        assert all(f"{name}: " in line for name in r["top_classes"])


def test_an_old_checkpoint_without_names_keeps_the_numbers(tmp_path, capsys):
    model = Sequential([Flatten(), Dense(16, 3, rng=np.random.default_rng(0))], input_shape=(4, 4, 1))
    path = save_checkpoint(tmp_path / "old.npz", model)
    classifier = Classifier.from_checkpoint(path)
    assert classifier.classes == (0, 1, 2) and classifier.class_names == ("0", "1", "2")
    np.save(tmp_path / "img.npy", np.full((4, 4), 100.0))
    assert main(["predict", str(path), str(tmp_path / "img.npy"), "--json", "--top", "2"]) == 0
    r = json.loads(capsys.readouterr().out)[0]
    assert r["class"] == str(r["label"]) and r["top_classes"] == [str(k) for k, _ in r["top"]]


def test_a_checkpoint_built_with_names_is_read_back(tmp_path):
    model = Sequential([Flatten(), Dense(12, 3, rng=np.random.default_rng(0))], input_shape=(2, 2, 3))
    meta = {"classes": ["leaf", "bark", "moss"],
            "preprocessing": {"scale": 1 / 255, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]}}
    classifier = Classifier.from_checkpoint(save_checkpoint(tmp_path / "c.npz", model, meta=meta))
    assert classifier.class_names == ("leaf", "bark", "moss") and classifier.input_shape == (2, 2, 3)
    bad = save_checkpoint(tmp_path / "bad.npz", model, meta={**meta, "classes": 7})
    with pytest.raises(ValueError, match="classes must be a sequence of 3 labels, got 7"):
        Classifier.from_checkpoint(bad)


# ---- the server -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shape_run(tmp_path_factory):
    """A digit-shaped (28x28x1) model trained on string labels: a bar's position names its class."""
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("shapes")
    names = np.array(["left", "middle", "right"])
    y = names[rng.integers(0, 3, 90)]
    x = np.zeros((90, 28, 28), np.uint8)
    for i, name in enumerate(y):
        column = {"left": 6, "middle": 13, "right": 20}[str(name)]
        x[i, 4:24, column : column + 3] = 255
    np.savez(folder / "bars.npz", x=x, y=y)
    run = folder / "run"
    assert main(["train", "--data", str(folder / "bars.npz"), "--model", "notebook", "--epochs", "1",
                 "--threads", "1", "--no-report", "--out", str(run)]) == 0
    return run


def test_training_on_grey_string_labels_names_the_classes(shape_run):
    assert load_checkpoint(shape_run / "last.npz").meta["classes"] == ["left", "middle", "right"]


def test_the_server_answers_with_the_class_name(shape_run):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2")
        from fastapi.testclient import TestClient
    from convnp.web.app import create_app

    client = TestClient(create_app(shape_run))
    pixels = np.zeros((28, 28))
    pixels[4:24, 12:15] = 255
    r = client.post("/api/predict", json={"pixels": pixels.tolist()}, params={"feature_maps": "false"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["class"] == ["left", "middle", "right"][body["label"]]
    schema = client.get("/openapi.json").json()["components"]["schemas"]["Prediction"]
    assert "class" in schema["required"] and schema["properties"]["class"]["type"] == "string"


def test_evaluate_adds_top5_over_five_classes(tmp_path, capsys):
    names = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"]
    model = Sequential([Flatten(), Dense(16, 7, rng=np.random.default_rng(1))], input_shape=(4, 4, 1))
    meta = {"classes": names, "preprocessing": {"scale": 1 / 255, "mean": [0.5], "std": [0.25]}}
    checkpoint = save_checkpoint(tmp_path / "seven.npz", model, meta=meta)
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 256, (50, 4, 4), dtype=np.uint8), np.array(names)[rng.integers(0, 7, 50)]
    np.savez(tmp_path / "d.npz", x=x, y=y, classes=np.array(names))
    probs = Classifier.from_checkpoint(checkpoint).predict_proba(x)  # (50, 7)
    labels = np.array([names.index(n) for n in y])
    expected = top_k_accuracy(probs, labels, 5)
    assert 0 < expected < 1
    assert main(["evaluate", str(checkpoint), "--data", str(tmp_path / "d.npz"), "--split", "train", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["top5_accuracy"] == pytest.approx(expected) and result["classes"] == names
    assert main(["evaluate", str(checkpoint), "--data", str(tmp_path / "d.npz"), "--split", "train"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].startswith("loss: ") and lines[4] == f"top-5 accuracy: {expected * 100:.2f}%"


def test_the_report_labels_its_figures_by_name(colour_run, monkeypatch):
    pytest.importorskip("matplotlib")
    from convnp.viz import report

    seen = {}
    monkeypatch.setattr(report, "plot_confusion", lambda matrix, labels=None: seen.setdefault("confusion", labels))
    monkeypatch.setattr(report, "plot_mistakes",
                        lambda *args, labels=None, **kwargs: seen.setdefault("mistakes", labels))
    monkeypatch.setattr(report, "plot_feature_maps", lambda model, image, title, **kwargs: seen.setdefault("maps", title))
    monkeypatch.setattr(report, "plot_filters", lambda weight, **kwargs: None)
    view = report.load_run(colour_run)
    report.run_figures(view, image_index=0)
    assert seen["confusion"] == SORTED and seen["mistakes"] == SORTED
    first = COLOURS[np.arange(24) % 4][0]  # the fixture's first test label
    assert f"label {first}, predicted " in seen["maps"]
    assert any(f"predicted {name} (" in seen["maps"] for name in SORTED)
